"""`GET /api/v1/me/limits` over HTTP, on a real aiohttp server and a real database (§6.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, select, update

from runapi.api.limits import routes
from runapi.app import errors_middleware
from runapi.auth import AccountRepository, KeyRepository
from runapi.catalog import load_catalog
from runapi.providers.registry import ProviderRegistry
from runapi.services import SERVICES, Services
from runapi.settings import load_settings
from runapi.store.database import Database
from runapi.store.schema import accounts, api_keys, free_grants

USD = 1_000_000


class Caller:
    def __init__(self, client: TestClient[Any, Any], db: Database, account_id: int, key_id: str, secret: str):
        self.client, self.db, self.account_id, self.key_id, self.secret = (
            client,
            db,
            account_id,
            key_id,
            secret,
        )

    async def get(self) -> dict[str, Any]:
        response = await self.client.get(
            "/api/v1/me/limits", headers={"Authorization": f"Bearer {self.secret}"}
        )
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def set_account(self, **values: Any) -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(accounts).where(accounts.c.id == self.account_id).values(**values))


@pytest.fixture
async def caller(db: Database) -> AsyncIterator[Caller]:
    settings = load_settings(env={})
    keys = KeyRepository(db, cache_seconds=0)
    services = Services(
        settings=settings,
        db=db,
        catalog=load_catalog(),
        accounts=AccountRepository(db),
        keys=keys,
        providers=ProviderRegistry({}),
    )
    app = web.Application(middlewares=[errors_middleware])
    app[SERVICES] = services
    app.add_routes(routes())
    account_id = (await services.accounts.create("me")).id
    created = await keys.create(account_id)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Caller(client, db, account_id, created.id, created.secret)


def by_class(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["model_class"]: entry for entry in body["limits"]}


async def test_new_account(caller: Caller) -> None:
    body = await caller.get()
    assert body["tier"] == 0
    assert body["qualification"] == {
        "paid_total_usd": "0.00",
        "first_payment_at": None,
        "next_tier": 1,
        "next_tier_requires": {"paid_total_usd": "5.00", "days_since_first_payment": 0},
    }
    assert body["monthly_spend_cap_usd"] == "0.00"
    assert body["spent_this_month_usd"] == "0.00"
    standard = by_class(body)["standard"]
    assert standard["models"] == ["MiniMax-M2", "MiniMax-M2.1", "MiniMax-M2.5", "MiniMax-M2.7"]
    assert (standard["rpm"], standard["itpm"], standard["otpm"], standard["concurrent"]) == (
        10,
        20_000,
        4_000,
        2,
    )
    assert set(by_class(body)) == {"standard", "highspeed", "m3", "local"}
    free = {entry["model"]: entry["status"] for entry in body["free_calls"]}
    assert free["MiniMax-M3"] == "available"
    assert "SmolLM2-135M-Instruct" not in free  # free of charge anyway: no grant to show


async def test_shows_progress_and_applies_a_due_promotion(caller: Caller) -> None:
    first = datetime.now(UTC) - timedelta(days=8)
    await caller.set_account(paid_total_micros=60 * USD, first_payment_at=first, tier=1)
    body = await caller.get()
    assert body["tier"] == 2  # the 7 days came due with no payment: promoted on the spot
    assert body["qualification"]["paid_total_usd"] == "60.00"
    assert body["qualification"]["first_payment_at"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["qualification"]["next_tier"] == 3
    assert body["qualification"]["next_tier_requires"] == {
        "paid_total_usd": "200.00",
        "days_since_first_payment": 7,
    }
    assert body["monthly_spend_cap_usd"] == "500.00"
    assert by_class(body)["standard"]["rpm"] == 500
    async with caller.db.connect() as conn:
        stored = (
            await conn.execute(select(accounts.c.tier).where(accounts.c.id == caller.account_id))
        ).scalar_one()
    assert stored == 2


async def test_top_tier_has_no_next(caller: Caller) -> None:
    await caller.set_account(tier=5, tier_pinned=True)
    body = await caller.get()
    assert body["tier"] == 5
    assert body["qualification"]["next_tier"] is None
    assert body["qualification"]["next_tier_requires"] is None
    assert body["monthly_spend_cap_usd"] is None


async def test_key_overrides_show_lowered_limits(caller: Caller) -> None:
    async with caller.db.begin() as conn:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == caller.key_id)
            .values(limit_overrides={"standard": {"rpm": 3, "otpm": 999_999}})
        )
    limits = by_class(await caller.get())
    assert limits["standard"]["rpm"] == 3
    assert limits["standard"]["otpm"] == 4_000  # an override cannot raise the tier's value
    assert limits["m3"]["rpm"] == 10


async def test_spend_this_month_and_account_cap(caller: Caller) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    await caller.set_account(spend_month=month, spend_month_micros=3_214_999, monthly_cap_micros=250 * USD)
    body = await caller.get()
    assert body["spent_this_month_usd"] == "3.21"
    assert body["monthly_spend_cap_usd"] == "250.00"  # the account's own cap wins over the tier's
    await caller.set_account(spend_month="2001-01")
    assert (await caller.get())["spent_this_month_usd"] == "0.00"  # last month's counter


async def test_free_call_statuses(caller: Caller) -> None:
    now = datetime.now(UTC)
    async with caller.db.begin() as conn:
        await conn.execute(
            insert(free_grants),
            [
                {
                    "account_id": caller.account_id,
                    "model": "MiniMax-M3",
                    "status": "consumed",
                    "updated_at": now,
                },
                {
                    "account_id": caller.account_id,
                    "model": "MiniMax-M2",
                    "status": "reserved",
                    "updated_at": now,
                },
            ],
        )
    free = {e["model"]: e["status"] for e in (await caller.get())["free_calls"]}
    assert (free["MiniMax-M3"], free["MiniMax-M2"], free["MiniMax-M2.7"]) == (
        "consumed",
        "reserved",
        "available",
    )
    await caller.set_account(created_at=now - timedelta(days=31))
    free = {e["model"]: e["status"] for e in (await caller.get())["free_calls"]}
    assert (free["MiniMax-M3"], free["MiniMax-M2.7"]) == ("consumed", "expired")


async def test_needs_a_key(caller: Caller) -> None:
    response = await caller.client.get("/api/v1/me/limits")
    assert response.status == 401
    body = await response.json()
    assert body["error"]["code"] == "invalid_api_key"
