"""The account, pricing, generation, invoice and admin routes over a real aiohttp server."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

from runapi.api import account as account_api
from runapi.api import admin as admin_api
from runapi.api.account import estimate_params_tokens
from runapi.auth import AccountRepository, KeyRepository
from runapi.billing import Ledger, hold_micros
from runapi.billing.invoices import generate_invoices
from runapi.catalog import Catalog
from runapi.ids import new_ulid
from runapi.providers.registry import ProviderRegistry
from runapi.services import SERVICES, Services
from runapi.settings import Settings
from runapi.store.database import Database
from runapi.store.schema import tasks

from .helpers import usage

ADMIN = "admin-secret-key"


class Api:
    def __init__(self, client: TestClient[Any, Any], db: Database, ledger: Ledger) -> None:
        self.client, self.db, self.ledger = client, db, ledger

    async def new_key(self, name: str = "Ada") -> tuple[int, dict[str, str]]:
        account = await AccountRepository(self.db).create(name, f"{name.lower()}@example.com")
        key = await KeyRepository(self.db).create(account.id)
        return account.id, {"Authorization": f"Bearer {key.secret}"}


@pytest.fixture
async def api(db: Database, ledger: Ledger, catalog: Catalog) -> AsyncIterator[Api]:
    settings = Settings(admin_key=ADMIN)
    svc = Services(
        settings=settings,
        db=db,
        catalog=catalog,
        accounts=AccountRepository(db),
        keys=KeyRepository(db, cache_seconds=0),
        providers=ProviderRegistry({}),
        extras={account_api.LEDGER_EXTRA: ledger},
    )
    app = web.Application()
    app[SERVICES] = svc
    app.add_routes(account_api.routes() + admin_api.routes())
    async with TestClient(TestServer(app)) as client:
        yield Api(client, db, ledger)


async def test_me_and_auth_errors(api: Api) -> None:
    account_id, auth = await api.new_key()
    r = await api.client.get("/api/v1/me", headers=auth)
    assert r.status == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert await r.json() == {
        "id": account_id,
        "name": "Ada",
        "email": "ada@example.com",
        "account": {"id": account_id, "name": "Ada"},
    }
    r = await api.client.get("/api/v1/me/balance")
    assert r.status == 401
    body = await r.json()
    assert body["error"]["code"] == "invalid_api_key"
    assert "message" in body["error"]


async def test_admin_credit_and_balance_in_cents(api: Api) -> None:
    account_id, auth = await api.new_key()
    url = f"/admin/v1/accounts/{account_id}/credit"
    payment = {"usd": "12.345678", "payment_id": "pi_1"}
    assert (await api.client.post(url, json=payment)).status == 401
    assert (await api.client.post(url, json=payment, headers={"Authorization": "Bearer nope"})).status == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = await api.client.post(url, json=payment, headers=admin)
    assert r.status == 200
    credit = await r.json()
    assert (credit["applied"], credit["balance_micros"], credit["balance_usd"]) == (
        True,
        12_345_678,
        "12.345678",
    )
    assert credit["tier"] >= 1  # $12 paid: promoted at once
    again = await (await api.client.post(url, json=payment, headers=admin)).json()
    assert (again["applied"], again["balance_micros"]) == (False, 12_345_678)
    conflict = await api.client.post(url, json={"usd": "1", "payment_id": "pi_1"}, headers=admin)
    assert conflict.status == 409
    bad = await api.client.post(url, json={"usd": "-1"}, headers=admin)
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "invalid_value"
    r = await api.client.post(url, json={"usd": 2.5, "bonus": True}, headers=admin)
    assert (await r.json())["balance_micros"] == 14_845_678
    ghost = {"usd": "1", "payment_id": "pi_ghost"}
    assert (
        await api.client.post("/admin/v1/accounts/999999/credit", json=ghost, headers=admin)
    ).status == 404

    r = await api.client.get("/api/v1/me/balance", headers=auth)
    assert await r.json() == {
        "balance_cents": 1484,  # truncated: $14.845678
        "paid_balance_cents": 1234,
        "bonus_balance_cents": 250,
        "spent_cents_today": 0,
        "spent_cents_total": 0,
    }
    detail = await (await api.client.get(f"/admin/v1/accounts/{account_id}", headers=admin)).json()
    assert detail["balance"]["paid_total_micros"] == 12_345_678
    assert detail["available_usd"] == "14.845678"


async def test_admin_refund_of_a_task(api: Api, catalog: Catalog) -> None:
    account_id, auth = await api.new_key()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    await api.ledger.topup(account_id, 1_000_000, "pi_refund")
    model = catalog.resolve("MiniMax-M2.7")
    ulid = new_ulid()
    adm = await api.ledger.admit(
        account_id=account_id,
        account_created_at=datetime.now(UTC) - timedelta(days=60),  # past the free calls
        task_id=f"task_{ulid}",
        model=model,
        est_input_tokens=1000,
        max_output_tokens=1000,
    )
    assert (await api.ledger.settle(adm, usage(), model)).cost_micros == 588
    url = "/admin/v1/refunds"
    assert (await api.client.post(url, json={"task_id": f"task_{ulid}"}, headers=auth)).status == 401

    # By the surface id, part of it, then the rest; the same refund_id again changes nothing.
    body = {"task_id": f"chatcmpl-{ulid}", "usd": "0.000100", "refund_id": "rf_1", "reason": "cut off"}
    r = await api.client.post(url, json=body, headers=admin)
    assert r.status == 200
    first = await r.json()
    assert {k: first[k] for k in ("account_id", "task_id", "applied", "amount_usd", "refunded_micros")} == {
        "account_id": account_id,
        "task_id": f"task_{ulid}",
        "applied": True,
        "amount_usd": "0.000100",
        "refunded_micros": 100,
    }
    assert first["balance_micros"] == 1_000_000 - 588 + 100
    again = await (await api.client.post(url, json=body, headers=admin)).json()
    assert (again["applied"], again["balance_micros"]) == (False, first["balance_micros"])
    rest = await (await api.client.post(url, json={"task_id": f"task_{ulid}"}, headers=admin)).json()
    assert (rest["amount_micros"], rest["charged_micros"], rest["balance_usd"]) == (488, 588, "1.000000")

    nothing = await api.client.post(url, json={"task_id": f"task_{ulid}"}, headers=admin)
    assert nothing.status == 409
    assert (await nothing.json())["error"]["code"] == "nothing_to_refund"
    unknown = await api.client.post(url, json={"task_id": "task_" + new_ulid()}, headers=admin)
    assert unknown.status == 404
    for bad, says in (
        ({"usd": "1"}, "task_id"),
        ({"task_id": f"task_{ulid}", "usd": "0.0000001"}, "6 decimals"),
    ):
        r = await api.client.post(url, json=bad, headers=admin)
        assert r.status == 400
        error = (await r.json())["error"]
        assert error["code"] == "invalid_value"
        assert says in error["message"]


async def test_price_schedules_with_etag(api: Api) -> None:
    r = await api.client.get("/api/v1/price_schedules")
    assert r.status == 200
    etag = r.headers["ETag"]
    body = await r.json()
    by_model = {s["model"]: s for s in body["price_schedules"]}
    m27 = by_model["MiniMax-M2.7"]
    assert {k: m27[k] for k in ("service", "action", "pricing_status", "catalog_status", "currency")} == {
        "service": "minimax",
        "action": "chat_completion",
        "pricing_status": "available",
        "catalog_status": "active",
        "currency": "USD",
    }
    assert (m27["input_price_per_1m_cents"], m27["output_price_per_1m_cents"]) == (30, 120)
    assert (m27["cache_read_price_per_1m_cents"], m27["cache_write_price_per_1m_cents"]) == (6, 38)
    assert m27["unit_price_cents"] is None
    assert m27["cache_write_5m_price_per_1m_cents"] is None
    assert m27["billing_config"]["usd_per_1m"] == {
        "input": "0.30",
        "output": "1.20",
        "cache_read": "0.06",
        "cache_write": "0.375",
    }
    assert m27["billing_config"]["effective_from"] == "2026-01-01T00:00:00Z"
    assert by_model["MiniMax-M3"]["billing_config"]["input_length_tiers"][0]["above_input_tokens"] == 524_288
    assert by_model["SmolLM2-135M-Instruct"]["service"] == "local"
    assert body["as_of"] == "2026-01-01T00:00:00Z"

    cached = await api.client.get("/api/v1/price_schedules", headers={"If-None-Match": etag})
    assert cached.status == 304
    assert cached.headers["ETag"] == etag
    alias = await (await api.client.get("/api/v1/price_schedules?model=gpt-4o")).json()
    assert [s["model"] for s in alias["price_schedules"]] == ["MiniMax-M2.7"]
    local = await (await api.client.get("/api/v1/price_schedules?service=local")).json()
    assert [s["model"] for s in local["price_schedules"]] == ["SmolLM2-135M-Instruct"]
    other = await api.client.get("/api/v1/price_schedules?service=local", headers={"If-None-Match": etag})
    assert other.status == 200


async def test_price_quote_is_the_admission_hold(api: Api, catalog: Catalog) -> None:
    _, auth = await api.new_key()
    params = {
        "messages": [{"role": "user", "content": "Write a haiku about ledgers." * 20}],
        "max_tokens": 1000,
    }
    r = await api.client.post(
        "/api/v1/price_quotes",
        json={"service": "minimax", "action": "chat_completion", "model": "MiniMax-M2.7", "params": params},
        headers=auth,
    )
    assert r.status == 200
    quote = (await r.json())["price_quote"]
    m27 = catalog.resolve("MiniMax-M2.7")
    expected = hold_micros(m27, estimate_params_tokens(params), 1000)
    assert quote["reservation_amount_cents"] == math.ceil(expected / 10_000)
    assert quote["estimate_basis"] == "input_estimate+max_output_tokens"
    assert (quote["model"], quote["currency"], quote["pricing_status"]) == (
        "MiniMax-M2.7",
        "USD",
        "available",
    )

    uncapped = await (
        await api.client.post(
            "/api/v1/price_quotes", json={"model": "minimax-m3", "params": {}}, headers=auth
        )
    ).json()
    assert uncapped["price_quote"]["estimate_basis"] == "input_estimate+hold_output_cap"
    assert uncapped["price_quote"]["reservation_amount_cents"] == math.ceil(
        hold_micros(catalog.resolve("MiniMax-M3"), 3, None) / 10_000
    )
    missing = await api.client.post("/api/v1/price_quotes", json={"model": "nope"}, headers=auth)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "model_not_found"
    assert (await api.client.post("/api/v1/price_quotes", data=b"[1", headers=auth)).status == 400
    bad_cap = {"model": "MiniMax-M2.7", "params": {"max_tokens": "many"}}
    assert (await api.client.post("/api/v1/price_quotes", json=bad_cap, headers=auth)).status == 400


async def _task_row(db: Database, account_id: int, status: str, **values: Any) -> str:
    ulid = new_ulid()
    created = datetime.now(UTC) - timedelta(seconds=3)
    row = {
        "id": f"task_{ulid}",
        "account_id": account_id,
        "api_key_id": "key_x",
        "model": "MiniMax-M2.7",
        "endpoint": "chat.completions",
        "surface_id": f"chatcmpl-{ulid}",
        "status": status,
        "streamed": True,
        "mode": "stream",
        "created_at": created,
        "started_at": created + timedelta(milliseconds=250),
        "completed_at": created + timedelta(milliseconds=2250),
        "free_call": False,
        "data_removed": False,
        **values,
    }
    async with db.begin() as conn:
        await conn.execute(insert(tasks).values(row))
    return ulid


async def test_generation_stats(api: Api) -> None:
    account_id, auth = await api.new_key()
    _, stranger = await api.new_key("Eve")
    schedule = api.ledger.prices.schedule_for("MiniMax-M2.7", datetime.now(UTC))
    assert schedule is not None
    ulid = await _task_row(
        api.db,
        account_id,
        "completed",
        upstream_id="up-1",
        finish_reason="stop",
        input_tokens=1200,
        cached_input_tokens=800,
        cache_write_tokens=0,
        output_tokens=350,
        reasoning_tokens=120,
        usage_source="upstream",
        cost_micros=588,
        billed=True,
        price_schedule_id=schedule.id,
    )
    for ident in (f"task_{ulid}", f"chatcmpl-{ulid}", f"msg_{ulid}"):
        r = await api.client.get(f"/api/v1/generation?id={ident}", headers=auth)
        assert r.status == 200
        data = (await r.json())["data"]
        assert data["id"] == f"task_{ulid}"
    assert data["total_cost"] == 0.000588
    assert data["cost_micros"] == 588
    assert data["cache_discount"] == pytest.approx(800 * (0.30 - 0.06) / 1e6)
    assert (data["tokens_prompt"], data["tokens_completion"], data["native_tokens_cached"]) == (
        1200,
        350,
        800,
    )
    assert (data["native_tokens_reasoning"], data["latency"], data["generation_time"]) == (120, 2250, 2000)
    assert (data["finish_reason"], data["streamed"], data["cancelled"], data["provider_name"]) == (
        "stop",
        True,
        False,
        "minimax",
    )
    assert data["upstream_id"] == "up-1"
    assert data["created_at"].endswith("Z")

    assert (await api.client.get(f"/api/v1/generation?id=chatcmpl-{ulid}", headers=stranger)).status == 404
    running = await _task_row(api.db, account_id, "processing")
    assert (await api.client.get(f"/api/v1/generation?id=task_{running}", headers=auth)).status == 404
    assert (await api.client.get("/api/v1/generation", headers=auth)).status == 400


async def test_invoices_routes(api: Api, catalog: Catalog) -> None:
    account_id, auth = await api.new_key()
    await api.ledger.topup(account_id, 5_000_000, "pi_inv")
    model = catalog.resolve("MiniMax-M2.7")
    adm = await api.ledger.admit(
        account_id=account_id,
        account_created_at=datetime.now(UTC) - timedelta(days=90),
        task_id="task_" + new_ulid(),
        model=model,
        est_input_tokens=2000,
        max_output_tokens=500,
    )
    await api.ledger.settle(adm, usage(), model)
    period = datetime.now(UTC).strftime("%Y-%m")
    [invoice] = await generate_invoices(api.db, period, account_ids=[account_id])

    listing = await (await api.client.get("/api/v1/invoices", headers=auth)).json()
    assert listing["object"] == "list"
    assert listing["has_more"] is False
    assert [i["id"] for i in listing["data"]] == [invoice.id] == [listing["last_id"]]
    one = await (await api.client.get(f"/api/v1/invoices/{invoice.id}", headers=auth)).json()
    assert (one["number"], one["total_micros"], one["subtotal_micros"], one["status"]) == (
        invoice.number,
        588,
        588,
        "draft",
    )
    html = await api.client.get(f"/api/v1/invoices/{invoice.number}?format=html", headers=auth)
    assert html.content_type == "text/html"
    assert invoice.number in await html.text()
    _, stranger = await api.new_key("Eve")
    assert (await api.client.get(f"/api/v1/invoices/{invoice.id}", headers=stranger)).status == 404
    assert (await api.client.get("/api/v1/invoices?limit=0", headers=auth)).status == 400
