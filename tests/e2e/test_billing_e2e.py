"""Billing end to end (issue 5's "must show"): the real gateway on the real simulator, called with the
official SDKs, checked against prices computed here from the catalog file and the simulator's
documented usage, and against the gateway's own ledger (read-only).

Every test runs on SQLite and on PostgreSQL (the `gateway` / `own_database_url` fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from runapi.canonical import Message, TextPart
from runapi.canonical.estimate import estimate_input_tokens
from runapi.canonical.types import ChatRequest
from tests.procs import (
    Gateway,
    Proc,
    SimCall,
    account_row,
    catalog_prices,
    db_rows,
    gateway_env,
    get_task,
    http_json,
    http_raw,
    key_id_of,
    ledger_of,
    running_gateway,
    sim_call,
    start_gateway_process,
    wait_for,
    write_config,
)

MODEL = "MiniMax-M2.7"
OTHER_MODEL = "MiniMax-M2.5"
USD = 1_000_000


def oai(gw: Gateway, key: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, **kw)


def anth(gw: Gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


def user(text: str) -> Any:
    """One user message (typed loosely: the SDKs' TypedDict params are not worth spelling here)."""
    return [{"role": "user", "content": text}]


def inline_cost(usage: Any) -> Any:
    """The `cost` extra field (USD number) of an SDK usage object."""
    assert usage is not None
    return usage.model_dump()["cost"]


def gateway_db(gw: Gateway) -> str:
    return gw.env["RUNAPI_DATABASE_URL"]


def generation(gw: Gateway, key: str, ident: str) -> dict[str, Any]:
    status, _, body = http_json(
        "GET", f"{gw.url}/api/v1/generation?id={ident}", headers={"Authorization": f"Bearer {key}"}
    )
    assert status == 200, body
    assert isinstance(body, dict)
    data: dict[str, Any] = body["data"]
    return data


def entries_of(gw: Gateway, task_id: str) -> list[dict[str, Any]]:
    return db_rows(
        gateway_db(gw),
        "SELECT type, amount_micros FROM ledger_entries WHERE task_id = :t ORDER BY type",
        t=task_id,
    )


def hold_status(gw: Gateway, task_id: str) -> str | None:
    rows = db_rows(gateway_db(gw), "SELECT status FROM holds WHERE task_id = :t", t=task_id)
    return str(rows[0]["status"]) if rows else None


def free_call_first(gw: Gateway, key: str, model: str = MODEL) -> str:
    """Use up the account's free first call of `model`, so the next calls take the paid path."""
    raw = oai(gw, key).chat.completions.with_raw_response.create(
        model=model, messages=user("warm up\n@sim tokens=2")
    )
    raw.parse()
    task = get_task(gw, key, raw.headers["x-runapi-task-id"])
    assert task["cost"]["free_call"] is True
    return str(task["id"])


def sum_of(entries: list[dict[str, Any]], kind: str, task_ids: set[str] | None = None) -> int:
    return sum(
        int(e["amount_micros"])
        for e in entries
        if e["type"] == kind and (task_ids is None or e["task_id"] in task_ids)
    )


# ---------------------------------------------------------------- 1. cost visible and exact


def test_cost_is_visible_and_exact_on_every_surface(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")
    free_task = free_call_first(gateway, key)
    client, aclient = oai(gateway, key), anth(gateway, key)
    checks: list[tuple[str, str, int, str]] = []  # task id, surface id, expected µ$, what

    # Chat, non-stream, with cached prompt tokens (three token classes priced).
    call = sim_call("Price this answer exactly", tokens=7, reasoning=5, cached=4)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user(call.text))
    chat = raw.parse()
    assert chat.usage is not None
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (
        call.prompt_tokens,
        call.completion_tokens,
    )
    assert chat.usage.prompt_tokens_details is not None
    assert chat.usage.prompt_tokens_details.cached_tokens == call.cached_tokens
    assert inline_cost(chat.usage) == call.cost_micros(MODEL) / USD
    checks.append((raw.headers["x-runapi-task-id"], chat.id, call.cost_micros(MODEL), "chat"))

    # Chat, stream: the cost rides on the final usage chunk.
    call = sim_call("Stream and price", tokens=11, reasoning=3)
    raw_stream = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user(call.text), stream=True, stream_options={"include_usage": True}
    )
    usage_chunks = [chunk for chunk in raw_stream.parse() if chunk.usage is not None]
    assert len(usage_chunks) == 1
    final_usage = usage_chunks[0].usage
    assert final_usage is not None
    assert final_usage.completion_tokens == call.completion_tokens
    assert inline_cost(final_usage) == call.cost_micros(MODEL) / USD
    checks.append(
        (raw_stream.headers["x-runapi-task-id"], usage_chunks[0].id, call.cost_micros(MODEL), "chat stream")
    )

    # Anthropic Messages, non-stream and stream (the final message_delta's usage).
    call = sim_call("Anthropic price", tokens=6, reasoning=4)
    raw_msg = aclient.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=user(call.text))
    msg = raw_msg.parse()
    assert msg.usage.output_tokens == call.completion_tokens
    assert inline_cost(msg.usage) == call.cost_micros(MODEL) / USD
    checks.append((raw_msg.headers["x-runapi-task-id"], msg.id, call.cost_micros(MODEL), "messages"))

    call = sim_call("Anthropic stream price", tokens=9, reasoning=2)
    raw_events = aclient.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=256,
        messages=user(call.text),
        stream=True,
    )
    message_id, delta_costs = "", []
    for event in raw_events.parse():
        if event.type == "message_start":
            message_id = event.message.id
        elif event.type == "message_delta":
            delta_costs.append(inline_cost(event.usage))
    assert delta_costs == [call.cost_micros(MODEL) / USD]
    checks.append(
        (raw_events.headers["x-runapi-task-id"], message_id, call.cost_micros(MODEL), "messages stream")
    )

    # Responses.
    call = sim_call("Responses price", tokens=8, reasoning=3)
    raw_resp = client.responses.with_raw_response.create(model=MODEL, input=call.text)
    resp = raw_resp.parse()
    assert resp.usage is not None
    assert resp.usage.output_tokens == call.completion_tokens
    assert inline_cost(resp.usage) == call.cost_micros(MODEL) / USD
    checks.append((raw_resp.headers["x-runapi-task-id"], resp.id, call.cost_micros(MODEL), "responses"))

    for task_id, surface_id, expected, what in checks:
        assert expected > 0
        task = get_task(gateway, key, task_id)
        assert task["status"] == "completed", what
        assert task["cost"] == {
            "amount": f"{Decimal(expected) / USD:.6f}",
            "amount_micros": expected,
            "billed": True,
            "free_call": False,
            "zero_charge_reason": None,
            "currency": "USD",
        }, what
        for ident in (task_id, surface_id):
            data = generation(gateway, key, ident)
            assert (data["id"], data["total_cost"]) == (task_id, expected / USD), (what, ident)
        entries = entries_of(gateway, task_id)
        by_type = {e["type"]: int(e["amount_micros"]) for e in entries}
        assert sorted(e["type"] for e in entries) == ["charge", "hold", "hold_release"], (what, entries)
        assert by_type["charge"] == -expected, what
        assert by_type["hold_release"] == -by_type["hold"], what
        assert by_type["hold"] >= expected, what
        assert hold_status(gateway, task_id) == "posted", what

    paid = sum(expected for _, _, expected, _ in checks)
    row = account_row(gateway_db(gateway), account_id)
    assert row["held_micros"] == 0
    assert row["balance_micros"] == 10 * USD - paid
    charges = [e for e in ledger_of(gateway_db(gateway), account_id) if e["type"] == "charge"]
    assert {e["task_id"] for e in charges} == {t for t, _, _, _ in checks} | {free_task}


def test_generation_stats_exist_as_soon_as_the_response_ends(gateway: Gateway) -> None:
    _, key = gateway.new_account("10")
    client = oai(gateway, key)
    missing = []
    for i in range(10):
        call = sim_call(f"stats right away {i}", tokens=3, reasoning=1)
        completion = client.chat.completions.create(model=MODEL, messages=user(call.text))
        status, _, body = http_json(
            "GET",
            f"{gateway.url}/api/v1/generation?id={completion.id}",
            headers={"Authorization": f"Bearer {key}"},
        )
        if status != 200:
            missing.append((completion.id, status))
            continue
        assert isinstance(body, dict)
        assert body["data"]["total_cost"] == call.cost_micros(MODEL) / USD
    assert missing == []


# ---------------------------------------------------------------- 2. concurrency: no overdraft


def hold_for(call: SimCall, max_tokens: int) -> int:
    """The worst-case hold of runapi-contract §8.4 for this request, from the gateway's own input
    estimate (the only number the test cannot know otherwise) and the catalog's prices."""
    request = ChatRequest(
        model=MODEL, messages=(Message("user", (TextPart(call.text),)),), max_output_tokens=max_tokens
    )
    prices = catalog_prices(MODEL)
    worst = estimate_input_tokens(request) * prices["input"] + max_tokens * prices["output"]
    return int(worst.quantize(Decimal(1), rounding=ROUND_CEILING))


def test_200_parallel_requests_never_overdraw(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("0")
    free_task = free_call_first(gateway, key)  # a tier-0 account may make its free calls
    max_tokens = 1000
    calls = [
        sim_call(f"Parallel request number {i}", tokens=1 + i % 9, reasoning=i % 4, extra="ttft_ms=1500")
        for i in range(200)
    ]
    worst_hold = max(hold_for(c, max_tokens) for c in calls)
    credit = 50 * worst_hold
    gateway.cli("credit", str(account_id), str(Decimal(credit) / USD))
    gateway.cli("accounts", "set-tier", str(account_id), "4")  # limits must not interfere

    async def one(client: openai.AsyncOpenAI, call: SimCall) -> tuple[str, Any]:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=user(call.text), max_tokens=max_tokens
            )
            return raw.headers["x-runapi-task-id"], raw.parse()
        except openai.APIStatusError as exc:
            return "refused", exc

    async def main() -> list[tuple[str, Any]]:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=key, max_retries=0, timeout=120
        ) as client:
            return await asyncio.gather(*(one(client, c) for c in calls))

    outcomes = asyncio.run(main())

    served: dict[str, int] = {}
    refused = 0
    for (task_id, result), call in zip(outcomes, calls, strict=True):
        if task_id == "refused":
            refused += 1
            assert result.status_code == 402, result
            assert result.code == "insufficient_credits"
            body = result.body
            assert isinstance(body, dict)
            assert body["type"] == "insufficient_quota"
            assert body["metadata"]["reason"] in ("in_flight_budget_exhausted", "weight_exceeds_budget")
            continue
        expected = call.cost_micros(MODEL)
        assert result.usage.completion_tokens == call.completion_tokens
        assert inline_cost(result.usage) == expected / USD
        served[task_id] = expected
    # The balance fits about 50 worst-case holds: most are refused, and at least the ~48 that fit
    # at any moment (the settled ones cost far less than their holds) are served.
    print("SERVED", len(served), "REFUSED", refused)
    assert refused > 0
    assert len(served) >= 45, (len(served), refused)

    row = account_row(gateway_db(gateway), account_id)
    entries = ledger_of(gateway_db(gateway), account_id)
    charged = sum_of(entries, "charge") - sum_of(entries, "charge", {free_task})
    assert row["held_micros"] == 0
    assert int(row["balance_micros"]) >= 0
    assert -charged == sum(served.values())
    assert {e["task_id"] for e in entries if e["type"] == "charge"} == set(served) | {free_task}
    assert row["balance_micros"] == credit + charged
    # Holds of the refused ones were never taken; every hold taken was released.
    assert sum_of(entries, "hold") == -sum_of(entries, "hold_release")

    # Every served request's task record reaches the database, terminal and with its cost; a
    # refused request leaves no task. (Records are written behind: a bounded wait.)
    def recorded() -> list[dict[str, Any]] | None:
        rows = db_rows(
            gateway_db(gateway),
            "SELECT id, status, cost_micros FROM tasks WHERE account_id = :a",
            a=account_id,
        )
        return rows if all(r["status"] == "completed" for r in rows) else None

    rows = wait_for(recorded, timeout=20, interval=0.2, what="the task records")
    assert isinstance(rows, list)
    assert {r["id"]: r["cost_micros"] for r in rows if r["id"] != free_task} == served


# ---------------------------------------------------------------- 3. failures cost nothing


def stream_until_it_breaks(client: openai.OpenAI, text: str) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user(text), stream=True, stream_options={"include_usage": True}
    )
    try:
        for _ in raw.parse():
            pass
    except openai.APIError:
        pass  # the gateway reports the upstream's failure in the stream
    return raw.headers["x-runapi-task-id"]


def test_failed_generations_cost_nothing_and_release_their_holds(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")
    free_call_first(gateway, key)
    before = account_row(gateway_db(gateway), account_id)
    client = oai(gateway, key)
    failed: dict[str, str] = {}

    for what, directive in (("http 500", "error=500"), ("200 with error body", "error=base_resp:1008")):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model=MODEL, messages=user(f"fail please\n@sim tokens=5 {directive}")
            )
        failed[what] = info.value.response.headers["x-runapi-task-id"]
    failed["upstream cut mid-stream"] = stream_until_it_breaks(
        client, "cut\n@sim tokens=12 disconnect_after=3"
    )
    failed["error frame mid-stream"] = stream_until_it_breaks(client, "break\n@sim tokens=12 error_after=2")

    for what, task_id in failed.items():
        task = get_task(gateway, key, task_id)
        assert task["status"] == "failed", what
        cost = task["cost"]
        assert isinstance(cost, dict)
        assert (cost["amount_micros"], cost["billed"], cost["zero_charge_reason"]) == (0, False, "failed"), (
            what
        )
        entries = entries_of(gateway, task_id)
        assert sorted(e["type"] for e in entries) == ["hold", "hold_release"], (what, entries)
        assert sum(int(e["amount_micros"]) for e in entries) == 0, what
        assert hold_status(gateway, task_id) == "voided", what
    after = account_row(gateway_db(gateway), account_id)
    assert after["held_micros"] == 0
    assert after["balance_micros"] == before["balance_micros"] == 10 * USD


# ---------------------------------------------------------------- 4. a killed gateway's holds


def test_killed_gateway_leaves_no_open_hold_after_the_sweep(simulator: Proc, own_database_url: str) -> None:
    env = gateway_env(
        own_database_url, simulator.url, RUNAPI_HOLD_TTL_SECONDS="2", RUNAPI_SWEEP_INTERVAL_SECONDS="0.5"
    )
    url = own_database_url
    with running_gateway(env, "10") as gw:
        key, account_id = gw.api_key, gw.account_id
        warm_up = free_call_first(gw, key)
        before = account_row(url, account_id)
        errors: list[BaseException] = []

        def slow(model: str) -> None:
            try:
                oai(gw, key, timeout=60).chat.completions.create(
                    model=model, messages=user("slow\n@sim tokens=3 ttft_ms=20000")
                )
            except BaseException as exc:  # the gateway dies under it
                errors.append(exc)

        # A paid call (a hold) and a first call of another model (a free-grant reservation).
        threads = [threading.Thread(target=slow, args=(m,), daemon=True) for m in (MODEL, OTHER_MODEL)]
        for t in threads:
            t.start()
        wait_for(
            lambda: (
                db_rows(url, "SELECT 1 FROM holds WHERE account_id = :a AND status = 'open'", a=account_id)
                and db_rows(
                    url,
                    "SELECT 1 FROM free_grants WHERE account_id = :a AND model = :m AND status = 'reserved'",
                    a=account_id,
                    m=OTHER_MODEL,
                )
            ),
            timeout=20,
            interval=0.02,
            what="the hold and the grant reservation",
        )
        gw.proc.stop(sig_kill=True)
        for t in threads:
            t.join(timeout=30)
        assert len(errors) == 2  # both requests lost their gateway

    second = start_gateway_process(env)
    try:

        def settled() -> bool:
            open_holds = db_rows(
                url, "SELECT 1 FROM holds WHERE account_id = :a AND status = 'open'", a=account_id
            )
            grants = db_rows(
                url,
                "SELECT status FROM free_grants WHERE account_id = :a AND model = :m",
                a=account_id,
                m=OTHER_MODEL,
            )
            return (
                not open_holds
                and account_row(url, account_id)["held_micros"] == 0
                and grants[0]["status"] == "available"
            )

        wait_for(settled, timeout=30, interval=0.2, what="the sweeper to release the dead process's holds")
    finally:
        second.stop()
    after = account_row(url, account_id)
    assert after["balance_micros"] == before["balance_micros"]
    entries = ledger_of(url, account_id)
    assert sum_of(entries, "hold") == -sum_of(entries, "hold_release")
    assert [e["task_id"] for e in entries if e["type"] == "charge"] == [warm_up]  # nothing else charged


# ---------------------------------------------------------------- 5. free first call


def test_free_first_call_per_model_then_paid(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")
    client, url = oai(gateway, key), gateway_db(gateway)

    # A failed first call does not use up the grant.
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=OTHER_MODEL, messages=user("fail first\n@sim error=500"))
    grant = db_rows(
        url,
        "SELECT status FROM free_grants WHERE account_id = :a AND model = :m",
        a=account_id,
        m=OTHER_MODEL,
    )
    assert [g["status"] for g in grant] in ([], ["available"])

    tasks: dict[str, tuple[str, SimCall]] = {}
    for label, model, call in (
        ("first", OTHER_MODEL, sim_call("first call", tokens=6, reasoning=2)),
        ("second", OTHER_MODEL, sim_call("second call", tokens=4, reasoning=1)),
        ("first other model", MODEL, sim_call("first of another model", tokens=5, reasoning=3)),
    ):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=user(call.text))
        assert inline_cost(raw.parse().usage) == call.cost_micros(model) / USD
        tasks[label] = (raw.headers["x-runapi-task-id"], call)

    models = {"first": OTHER_MODEL, "second": OTHER_MODEL, "first other model": MODEL}
    for label, (task_id, call) in tasks.items():
        expected = call.cost_micros(models[label])
        cost = get_task(gateway, key, task_id)["cost"]
        assert isinstance(cost, dict)
        free = label != "second"
        assert (cost["amount_micros"], cost["billed"], cost["free_call"]) == (expected, True, free), label
        by_type = {e["type"]: int(e["amount_micros"]) for e in entries_of(gateway, task_id)}
        if free:  # a charge and an equal free grant: net 0, both on record; no hold was taken
            assert by_type == {"charge": -expected, "free_grant": expected}, label
        else:
            assert by_type == {"charge": -expected, "hold": by_type["hold"], "hold_release": -by_type["hold"]}
    grants = db_rows(
        url, "SELECT model, status, task_id FROM free_grants WHERE account_id = :a", a=account_id
    )
    assert {(g["model"], g["status"], g["task_id"]) for g in grants} == {
        (OTHER_MODEL, "consumed", tasks["first"][0]),
        (MODEL, "consumed", tasks["first other model"][0]),
    }
    row = account_row(url, account_id)
    assert row["balance_micros"] == 10 * USD - tasks["second"][1].cost_micros(OTHER_MODEL)
    assert row["held_micros"] == 0


def test_two_concurrent_first_calls_are_free_only_once(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("0")  # tier 0, no payment: only free first calls
    barrier = threading.Barrier(2)
    outcomes: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        client = oai(gateway, key, timeout=60)
        barrier.wait(timeout=30)
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=user(f"race {i}\n@sim tokens=4 ttft_ms=800")
            )
            result: tuple[str, Any] = (raw.headers["x-runapi-task-id"], raw.parse())
        except openai.APIStatusError as exc:
            result = ("refused", exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    served = [(t, r) for t, r in outcomes if t != "refused"]
    refused = [r for t, r in outcomes if t == "refused"]
    assert (len(served), len(refused)) == (1, 1), outcomes
    assert refused[0].status_code == 402
    assert refused[0].code == "insufficient_credits"
    task_id = served[0][0]
    cost = get_task(gateway, key, task_id)["cost"]
    assert isinstance(cost, dict)
    assert cost["free_call"] is True
    assert cost["amount_micros"] > 0
    entries = ledger_of(gateway_db(gateway), account_id)
    assert sorted((e["type"], e["task_id"]) for e in entries) == [
        ("charge", task_id),
        ("free_grant", task_id),
    ]
    row = account_row(gateway_db(gateway), account_id)
    assert (row["balance_micros"], row["held_micros"]) == (0, 0)


def abandoned_upstream_calls(gw: Gateway) -> float:
    status, _, text = http_raw("GET", f"{gw.url}/metrics")
    assert status == 200
    for line in text.decode().splitlines():
        if line.startswith("runapi_upstream_abandoned_total "):
            return float(line.split()[1])
    raise AssertionError("runapi_upstream_abandoned_total is not in /metrics")


def test_a_hold_refused_after_the_upstream_started_leaves_nothing_behind(gateway: Gateway) -> None:
    """The upstream call starts while the ledger writes the hold (`Ledger.admit_ahead`). When the
    hold then does not fit, the caller gets the 402 of §8.6 in its own dialect, without waiting for
    the upstream, and nothing stays taken: no task, no hold, the concurrency slot and the
    Idempotency-Key free again. Right after a refusal the account's holds are awaited first."""
    account_id, key = gateway.new_account("0.0001")  # $0.0001: far less than any hold
    free_task = free_call_first(gateway, key)  # a free first call would be answered first
    gateway.cli(
        "keys", "set-limits", key_id_of(gateway, account_id), "--model-class", "standard", "--concurrent", "1"
    )
    before = abandoned_upstream_calls(gateway)
    slow = user("never billed\n@sim tokens=5 ttft_ms=5000")

    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as refused:
        oai(gateway, key).chat.completions.create(
            model=MODEL, messages=slow, max_tokens=4000, extra_headers={"Idempotency-Key": "late-402"}
        )
    assert time.monotonic() - started < 4  # the 402 did not wait for the upstream's first token
    assert refused.value.status_code == 402
    assert refused.value.code == "insufficient_credits"
    assert abandoned_upstream_calls(gateway) == before + 1

    with pytest.raises(anthropic.APIStatusError) as refused_again:
        anth(gateway, key).messages.create(model=MODEL, max_tokens=4000, messages=slow)
    assert refused_again.value.status_code == 402
    body = refused_again.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "billing_error"
    assert abandoned_upstream_calls(gateway) == before + 1  # refused a moment ago: hold first

    row = account_row(gateway_db(gateway), account_id)
    assert (row["balance_micros"], row["held_micros"]) == (100, 0)
    entries = ledger_of(gateway_db(gateway), account_id)
    assert {e["task_id"] for e in entries if e["type"] in ("hold", "hold_release", "charge")} == {free_task}
    tasks_now = db_rows(gateway_db(gateway), "SELECT id FROM tasks WHERE account_id = :a", a=account_id)
    assert [t["id"] for t in tasks_now] == [free_task]

    # With credit, the same Idempotency-Key makes the call (it was never bound to a task), and the
    # one concurrency slot was given back by each refusal.
    gateway.cli("credit", str(account_id), "5")
    raw = oai(gateway, key).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=user("billed now\n@sim tokens=5"),
        max_tokens=4000,
        extra_headers={"Idempotency-Key": "late-402"},
    )
    assert raw.parse().choices[0].message.content
    assert "x-runapi-idempotent-replay" not in raw.headers
    assert get_task(gateway, key, raw.headers["x-runapi-task-id"])["cost"]["amount_micros"] > 0


@contextlib.contextmanager
def writes_blocked(gw: Gateway, account_id: int, tables: str = "accounts, free_grants") -> Iterator[None]:
    """Make the gateway's writes wait until the block ends: SQLite's write lock (every write), or
    on PostgreSQL a lock on `tables` (reads go on; by default the two an admission writes first)."""
    locked, release = threading.Event(), threading.Event()
    url = gateway_db(gw)

    async def hold() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                if url.startswith("sqlite"):
                    await conn.execute(
                        text("UPDATE accounts SET name = name WHERE id = :a"), {"a": account_id}
                    )
                else:
                    await conn.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
                locked.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait, 60)
                await conn.rollback()
        finally:
            await engine.dispose()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert locked.wait(30)
        yield
    finally:
        release.set()
        holder.join(60)


def test_a_caller_gone_while_its_hold_is_written_gives_everything_back(gateway: Gateway) -> None:
    """A client that leaves while admission waits for the ledger (a slow database, a short client
    timeout) must not keep its concurrency slot, nor its hold or free-call reservation, once they
    land: both admission paths, the free first call (answered before the upstream starts) and a
    paid hold (written while the upstream starts)."""
    account_id, key = gateway.new_account("5")
    gateway.cli(
        "keys", "set-limits", key_id_of(gateway, account_id), "--model-class", "standard", "--concurrent", "1"
    )
    hasty = oai(gateway, key, timeout=1.0)

    def leaves_during_admission() -> None:
        with writes_blocked(gateway, account_id), pytest.raises(openai.APITimeoutError):
            hasty.chat.completions.create(model=MODEL, messages=user("gone\n@sim tokens=3"), max_tokens=100)

    def reservations() -> tuple[int, list[str], list[str]]:
        db = gateway_db(gateway)
        held = int(account_row(db, account_id)["held_micros"])
        grants = db_rows(db, "SELECT status FROM free_grants WHERE account_id = :a", a=account_id)
        holds = db_rows(db, "SELECT status FROM holds WHERE account_id = :a", a=account_id)
        return held, sorted(str(g["status"]) for g in grants), sorted(str(h["status"]) for h in holds)

    leaves_during_admission()  # the free first call's reservation
    wait_for(lambda: reservations() == (0, ["available"], []), timeout=20, what="the grant given back")
    free_task = free_call_first(gateway, key)
    leaves_during_admission()  # a paid hold
    wait_for(lambda: reservations() == (0, ["consumed"], ["voided"]), timeout=20, what="the hold voided")

    tasks_now = db_rows(gateway_db(gateway), "SELECT id FROM tasks WHERE account_id = :a", a=account_id)
    assert [t["id"] for t in tasks_now] == [free_task]
    done = oai(gateway, key).chat.completions.create(model=MODEL, messages=user("after\n@sim tokens=2"))
    assert done.choices[0].message.content  # the one slot is free


def test_a_caller_gone_while_its_task_waits_for_the_store_gives_everything_back(
    simulator: Proc, own_database_url: str, tmp_path: Path
) -> None:
    """Task writes are never dropped: with the write buffer full, admitted callers wait for room.
    One that leaves meanwhile gives back its concurrency slot and its hold (on PostgreSQL only the
    tasks table is locked, so the caller is past admission; on SQLite every write waits, so it
    leaves during admission, the case of the test above)."""
    config = write_config(tmp_path, "[tasks]\nwrite_buffer_limit = 1\n")
    env = gateway_env(own_database_url, simulator.url, RUNAPI_CONFIG=config)
    with running_gateway(env, "0") as gw:
        account_id, key = gw.new_account("5")
        gw.cli(
            "keys", "set-limits", key_id_of(gw, account_id), "--model-class", "standard", "--concurrent", "2"
        )
        free_task = free_call_first(gw, key)
        slow: list[Any] = []
        with writes_blocked(gw, account_id, tables="tasks"):
            # The first call's task takes the one place in the buffer (and waits for the lock)...
            first = threading.Thread(
                target=lambda: slow.append(
                    oai(gw, key, timeout=60).chat.completions.create(
                        model=MODEL, messages=user("kept\n@sim tokens=3 ttft_ms=1500"), max_tokens=100
                    )
                )
            )
            first.start()
            time.sleep(0.5)
            # ...so the second one waits for room, and its client gives up.
            with pytest.raises(openai.APITimeoutError):
                oai(gw, key, timeout=1.0).chat.completions.create(
                    model=MODEL, messages=user("gone\n@sim tokens=3"), max_tokens=100
                )
        first.join(60)
        assert slow
        assert slow[0].choices[0].message.content

        def settled() -> tuple[list[str], int] | None:
            row = account_row(gateway_db(gw), account_id)
            holds = db_rows(gateway_db(gw), "SELECT status FROM holds WHERE account_id = :a", a=account_id)
            statuses = sorted(str(h["status"]) for h in holds)
            tasks_now = db_rows(gateway_db(gw), "SELECT id FROM tasks WHERE account_id = :a", a=account_id)
            if row["held_micros"] or "open" in statuses or len(tasks_now) < 2:
                return None  # still being written (task records are written behind)
            assert free_task in {t["id"] for t in tasks_now}
            return statuses, len(tasks_now)

        # The first call's hold posted, the second's voided; no task for the second.
        assert wait_for(settled, timeout=20, what="the holds and tasks written") == (["posted", "voided"], 2)

        # Both slots are free: two calls at once get through.
        both = [
            threading.Thread(
                target=lambda i=i: slow.append(
                    oai(gw, key, timeout=60).chat.completions.create(
                        model=MODEL, messages=user(f"pair {i}\n@sim tokens=2 ttft_ms=800")
                    )
                )
            )
            for i in range(2)
        ]
        for t in both:
            t.start()
        for t in both:
            t.join(60)
        assert len(slow) == 3


# ---------------------------------------------------------------- 6. invoice == ledger


def test_invoice_total_equals_the_ledger(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")
    client = oai(gateway, key)
    calls: list[tuple[str, SimCall]] = [
        (MODEL, sim_call("invoice a", tokens=5, reasoning=2)),  # free first call
        (MODEL, sim_call("invoice b", tokens=9, reasoning=4, cached=3)),
        (MODEL, sim_call("invoice c", tokens=13, reasoning=0)),
        (OTHER_MODEL, sim_call("invoice d", tokens=7, reasoning=1)),  # free first call
        (OTHER_MODEL, sim_call("invoice e", tokens=3, reasoning=6)),
    ]
    for model, call in calls:
        client.chat.completions.create(model=model, messages=user(call.text))
    with pytest.raises(openai.APIStatusError):  # a failure: never on the invoice
        client.chat.completions.create(model=MODEL, messages=user("invoice f\n@sim error=500"))

    entries = ledger_of(gateway_db(gateway), account_id)
    months = {str(e["created_at"])[:7] for e in entries if e["type"] in ("charge", "free_grant")}
    assert len(months) == 1  # (a run straddling midnight at a month's end would see two)
    month = months.pop()
    invoices = json.loads(gateway.cli("invoices", "run", "--month", month, "--json"))
    [invoice] = [inv for inv in invoices if inv["account_id"] == account_id]

    charges = -sum_of(entries, "charge")
    grants = sum_of(entries, "free_grant")
    paid = [(m, c) for m, c in calls if c.text.startswith(("invoice b", "invoice c", "invoice e"))]
    assert charges == sum(c.cost_micros(m) for m, c in calls)
    assert grants == calls[0][1].cost_micros(MODEL) + calls[3][1].cost_micros(OTHER_MODEL)
    assert invoice["period"] == month
    assert invoice["subtotal_micros"] == charges
    assert abs(invoice["free_grants_micros"]) == grants
    assert invoice["total_micros"] == charges - grants == sum(c.cost_micros(m) for m, c in paid)
    cents = (Decimal(invoice["total_micros"]) / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert invoice["total"] == f"{cents / 100:.2f}"

    # Line items: tokens per (model, class) as the simulator reported them, at the catalog's prices.
    expected_tokens: dict[tuple[str, str], int] = {}
    for model, call in calls:
        for token_class, tokens in (
            ("input", call.prompt_tokens - call.cached_tokens),
            ("cached_input", call.cached_tokens),
            ("output", call.completion_tokens),
        ):
            if tokens:
                expected_tokens[(model, token_class)] = expected_tokens.get((model, token_class), 0) + tokens
    lines = {(li["model"], li["token_class"]): li for li in invoice["line_items"]}
    assert {k: li["tokens"] for k, li in lines.items()} == expected_tokens
    price_key = {"input": "input", "cached_input": "cache_read", "output": "output"}
    for (model, token_class), li in lines.items():
        assert Decimal(li["unit_price_per_1m"]) == catalog_prices(model)[price_key[token_class]]
    assert sum(li["amount_micros"] for li in lines.values()) + invoice["rounding_micros"] == charges

    again = json.loads(gateway.cli("invoices", "run", "--month", month, "--json"))
    [same] = [inv for inv in again if inv["account_id"] == account_id]
    assert (same["id"], same["number"], same["total_micros"]) == (
        invoice["id"],
        invoice["number"],
        invoice["total_micros"],
    )


def test_a_refund_from_the_cli_gives_a_paid_call_back(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")
    client = oai(gateway, key)
    free = client.chat.completions.create(model=MODEL, messages=user("refund free"))
    call = sim_call("refund paid", tokens=11, reasoning=3)
    paid = client.chat.completions.create(model=MODEL, messages=user(call.text))
    cost = call.cost_micros(MODEL)
    before = account_row(gateway_db(gateway), account_id)["balance_micros"]
    assert before == 10 * USD - cost

    # By the id the client saw (chatcmpl-…), with a refund id that makes a retry a no-op.
    done = json.loads(gateway.cli("refund", paid.id, "--refund-id", "rf-e2e", "--reason", "test", "--json"))
    assert (done["applied"], done["amount_micros"], done["account_id"]) == (True, cost, account_id)
    again = json.loads(gateway.cli("refund", paid.id, "--refund-id", "rf-e2e", "--json"))
    assert (again["applied"], again["balance_micros"]) == (False, 10 * USD)
    assert account_row(gateway_db(gateway), account_id)["balance_micros"] == 10 * USD
    refunds = [e for e in ledger_of(gateway_db(gateway), account_id) if e["type"] == "refund"]
    assert [(e["amount_micros"], e["idempotency_key"]) for e in refunds] == [(cost, "refund:rf-e2e")]
    # The free first call cost the account nothing: there is nothing to give back.
    with pytest.raises(RuntimeError, match="nothing left to refund"):
        gateway.cli("refund", free.id)
