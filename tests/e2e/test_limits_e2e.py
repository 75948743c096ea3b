"""Rate limits end to end (issue 6's "must show"): real gateway processes on the real simulator,
called with the official SDKs; limits read from the shipped tier table, state checked in headers,
429 bodies and the gateway's own database (read-only).

Every test runs on SQLite and on PostgreSQL; the two-process test needs Redis and PostgreSQL.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.procs import (
    PYTHON,
    Gateway,
    Proc,
    db_rows,
    drop_postgres,
    fresh_postgres_url,
    gateway_env,
    get_task,
    http_json,
    key_id_of,
    ledger_of,
    running_gateway,
    start_gateway_process,
    tier_limits,
    write_config,
)

MODEL = "MiniMax-M2.7"  # model class `standard`
POSTGRES_URL = os.environ.get("RUNAPI_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("RUNAPI_TEST_REDIS_URL")


def oai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def anth(url: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=60)


def user(text: str) -> Any:
    """One user message (typed loosely: the SDKs' TypedDict params are not worth spelling here)."""
    return [{"role": "user", "content": text}]


def gateway_db(gw: Gateway) -> str:
    return gw.env["RUNAPI_DATABASE_URL"]


def assert_openai_429(exc: openai.RateLimitError, limit: int) -> None:
    """runapi-contract §6.3: OpenAI's 429 shape, `retry-after` in seconds, headers at zero."""
    assert exc.status_code == 429
    body = exc.body
    assert isinstance(body, dict)
    assert (body["type"], body["code"], body["param"]) == ("requests", "rate_limit_exceeded", None)
    assert body["message"]
    headers = exc.response.headers
    assert float(headers["retry-after"]) > 0
    assert headers["x-ratelimit-limit-requests"] == str(limit)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-runapi-task-id" not in headers  # refused at admission: no task


def assert_anthropic_429(exc: anthropic.RateLimitError, limit: int) -> None:
    assert exc.status_code == 429
    body = exc.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"]
    assert str(body["request_id"]).startswith("req_")
    headers = exc.response.headers
    assert float(headers["retry-after"]) > 0
    assert headers["anthropic-ratelimit-requests-limit"] == str(limit)
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")  # RFC 3339


def tasks_of_key(database_url: str, key_id: str) -> set[str]:
    rows = db_rows(database_url, "SELECT id FROM tasks WHERE api_key_id = :k", k=key_id)
    return {str(r["id"]) for r in rows}


# ---------------------------------------------------------------- 7. two processes, one limit


needs_postgres_and_redis = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="needs RUNAPI_TEST_POSTGRES_URL and RUNAPI_TEST_REDIS_URL"
)


@dataclass
class TwoProcesses:
    first: Gateway
    second: Proc
    database_url: str
    key_id: str


@contextmanager
def two_processes_one_key(simulator: Proc, *key_limits: str) -> Iterator[TwoProcesses]:
    """Two gateway processes on one fresh PostgreSQL database and the shared Redis. The first's
    account is at a high tier, so only its key's own override (`key_limits`) binds (and the
    account-wide bucket, keyed by account id in the shared Redis, is far from its ceiling)."""
    assert POSTGRES_URL is not None
    assert REDIS_URL is not None
    url = fresh_postgres_url(POSTGRES_URL)
    env = gateway_env(url, simulator.url, RUNAPI_REDIS_URL=REDIS_URL)
    try:
        # Redis buckets are named after account ids, and other suites share this Redis: start our
        # account ids somewhere no other fresh database does.
        subprocess.run(
            [PYTHON, "-m", "runapi.cli.main", "keys", "list"], env=env, check=True, capture_output=True
        )
        db_rows(
            url,
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'), :n)",
            n=random.randint(10**6, 2 * 10**9),
        )
        with running_gateway(env, "10") as first:
            second = start_gateway_process(env)
            try:
                first.cli("accounts", "set-tier", str(first.account_id), "4")
                key_id = key_id_of(first, first.account_id)
                first.cli("keys", "set-limits", key_id, "--model-class", "standard", *key_limits)
                yield TwoProcesses(first, second, url, key_id)
            finally:
                second.stop()
    finally:
        drop_postgres(url)


@needs_postgres_and_redis
def test_two_gateway_processes_share_one_limit(simulator: Proc) -> None:
    limit = 10
    with two_processes_one_key(simulator, "--rpm", str(limit)) as pair:
        key = pair.first.api_key
        served: dict[str, list[str]] = {pair.first.url: [], pair.second.url: []}
        refused: list[openai.RateLimitError] = []
        for i in range(3 * limit):
            gw_url = (pair.first.url, pair.second.url)[i % 2]
            try:
                raw = oai(gw_url, key).chat.completions.with_raw_response.create(
                    model=MODEL, messages=user(f"shared {i}\n@sim tokens=2")
                )
                raw.parse()
                served[gw_url].append(raw.headers["x-runapi-task-id"])
            except openai.RateLimitError as exc:
                refused.append(exc)
        total = sum(len(v) for v in served.values())
        assert limit - 1 <= total <= limit + 1, served
        assert all(served.values()), "both processes served part of the budget"
        for refusal in refused:
            assert_openai_429(refusal, limit)

        # The Anthropic surface of either process sees the same empty bucket.
        with pytest.raises(anthropic.RateLimitError) as info:
            anth(pair.second.url, key).messages.create(
                model=MODEL,
                max_tokens=64,
                messages=user("anthropic too\n@sim tokens=2"),
            )
        assert_anthropic_429(info.value, limit)

        # Refused requests left nothing behind: no task, no ledger entry.
        ok = {t for ids in served.values() for t in ids}
        assert tasks_of_key(pair.database_url, pair.key_id) == ok
        ledger = ledger_of(pair.database_url, pair.first.account_id)
        assert {e["task_id"] for e in ledger if e["task_id"]} == ok


@needs_postgres_and_redis
def test_a_concurrency_slot_is_free_again_when_the_answer_arrives(simulator: Proc) -> None:
    """With one request in flight allowed, sequential requests alternating between two processes
    all get through: each one's slot in Redis is released before its answer leaves (the release
    overlaps the ledger's settlement, it is not sent after the answer)."""
    with two_processes_one_key(simulator, "--concurrent", "1") as pair:
        key = pair.first.api_key
        clients = [oai(pair.first.url, key), oai(pair.second.url, key)]
        for i in range(20):
            done = clients[i % 2].chat.completions.create(
                model=MODEL, messages=user(f"one at a time {i}\n@sim tokens=2")
            )
            assert done.choices[0].message.content


# ---------------------------------------------------------------- 8. headers match the state


def test_headers_match_the_state_and_refusals_cost_nothing(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")  # $10 paid: tier 1
    tier = tier_limits(1)
    remaining: list[int] = []
    started = time.monotonic()
    for i in range(5):
        raw = oai(gateway.url, key).chat.completions.with_raw_response.create(
            model=MODEL, messages=user(f"count me {i}\n@sim tokens=2")
        )
        raw.parse()
        assert raw.headers["x-ratelimit-limit-requests"] == str(tier["rpm"])
        assert raw.headers["x-ratelimit-limit-tokens"] in (str(tier["itpm"]), str(tier["otpm"]))
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    raw_msg = anth(gateway.url, key).messages.with_raw_response.create(
        model=MODEL,
        max_tokens=64,
        messages=user("and me\n@sim tokens=2"),
    )
    raw_msg.parse()
    assert raw_msg.headers["anthropic-ratelimit-requests-limit"] == str(tier["rpm"])
    remaining.append(int(raw_msg.headers["anthropic-ratelimit-requests-remaining"]))
    elapsed = time.monotonic() - started
    # Each request takes one from the bucket; the bucket refills rpm/60 per second meanwhile
    # (continuous refill), so on a slow machine a count may come back by what has refilled.
    refilled = math.ceil(elapsed * tier["rpm"] / 60)
    for n, left in enumerate(remaining, start=1):
        assert tier["rpm"] - n <= left <= tier["rpm"] - n + refilled, (remaining, elapsed)
    if refilled <= 1:
        assert remaining == [tier["rpm"] - n for n in range(1, len(remaining) + 1)]

    # A key of the same account, limited to 2 requests/min: its refusals cost nothing.
    other = gateway.cli("keys", "create", "--account", str(account_id), "--json")
    import json

    created = json.loads(other)
    other_key, other_id = created["api_key"], created["key_id"]
    gateway.cli("keys", "set-limits", other_id, "--model-class", "standard", "--rpm", "2")
    before = db_rows(
        gateway_db(gateway), "SELECT balance_micros, held_micros FROM accounts WHERE id = :a", a=account_id
    )
    ledger_before = len(ledger_of(gateway_db(gateway), account_id))
    served = []
    for i in range(2):
        raw = oai(gateway.url, other_key).chat.completions.with_raw_response.create(
            model=MODEL, messages=user(f"limited {i}\n@sim tokens=2")
        )
        raw.parse()
        served.append(raw.headers["x-runapi-task-id"])
    charged = [
        e for e in ledger_of(gateway_db(gateway), account_id)[ledger_before:] if e["task_id"] in set(served)
    ]
    for i in range(3):
        with pytest.raises(openai.RateLimitError) as info:
            oai(gateway.url, other_key).chat.completions.create(
                model=MODEL, messages=user(f"over {i}\n@sim tokens=2")
            )
        assert_openai_429(info.value, 2)
    with pytest.raises(openai.RateLimitError) as refused_resp:
        oai(gateway.url, other_key).responses.create(model=MODEL, input="over on responses\n@sim tokens=2")
    assert_openai_429(refused_resp.value, 2)
    assert tasks_of_key(gateway_db(gateway), other_id) == set(served)
    after_entries = ledger_of(gateway_db(gateway), account_id)[ledger_before:]
    assert after_entries == charged  # nothing but the two served calls' entries
    after = db_rows(
        gateway_db(gateway), "SELECT balance_micros, held_micros FROM accounts WHERE id = :a", a=account_id
    )
    spent = -sum(int(e["amount_micros"]) for e in charged if e["type"] == "charge")
    assert after[0]["balance_micros"] == int(before[0]["balance_micros"]) - spent
    assert after[0]["held_micros"] == 0


# ---------------------------------------------------------------- 9. promotion on the next request


def test_promotion_raises_the_limits_on_the_next_request(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("0")  # tier 0: only free first calls
    tier0, tier1 = tier_limits(0), tier_limits(1)
    client = oai(gateway.url, key)

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("free one\n@sim tokens=2")
    )
    raw.parse()
    assert raw.headers["x-ratelimit-limit-requests"] == str(tier0["rpm"])
    with pytest.raises(openai.APIStatusError) as info:  # the free call is used up; no payment yet
        client.chat.completions.create(model=MODEL, messages=user("paid one\n@sim tokens=2"))
    assert info.value.status_code == 402
    assert info.value.code == "insufficient_credits"
    body = info.value.body
    assert isinstance(body, dict)
    assert body["metadata"]["reason"] == "insufficient_credits"
    assert info.value.response.headers["x-ratelimit-limit-requests"] == str(tier0["rpm"])
    with pytest.raises(anthropic.APIStatusError) as anthropic_info:
        anth(gateway.url, key).messages.create(
            model=MODEL,
            max_tokens=64,
            messages=user("paid one\n@sim tokens=2"),
        )
    assert anthropic_info.value.status_code == 402
    anthropic_body = anthropic_info.value.body
    assert isinstance(anthropic_body, dict)
    assert anthropic_body["error"]["type"] == "billing_error"

    gateway.cli("credit", str(account_id), "5")  # crosses tier 1's $5 threshold

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("paid now\n@sim tokens=2")
    )
    raw.parse()
    assert raw.headers["x-ratelimit-limit-requests"] == str(tier1["rpm"])
    status, _, body = http_json(
        "GET", f"{gateway.url}/api/v1/me/limits", headers={"Authorization": f"Bearer {key}"}
    )
    assert status == 200
    assert isinstance(body, dict)
    assert body["tier"] == 1
    standard = [entry for entry in body["limits"] if entry["model_class"] == "standard"]
    assert standard
    assert standard[0]["rpm"] == tier1["rpm"]


# ---------------------------------------------------------------- 10. concurrency cap


def test_concurrency_cap_refuses_at_once(gateway: Gateway) -> None:
    account_id, key = gateway.new_account("10")
    key_id = key_id_of(gateway, account_id)
    gateway.cli("keys", "set-limits", key_id, "--model-class", "standard", "--concurrent", "2")
    barrier = threading.Barrier(4)
    events: list[tuple[str, int, Any]] = []  # in the order they happened
    lock = threading.Lock()

    def stream(i: int) -> None:
        client = oai(gateway.url, key)
        barrier.wait(timeout=30)
        try:
            chunks = client.chat.completions.create(
                model=MODEL, messages=user(f"slow {i}\n@sim tokens=3 ttft_ms=1500"), stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            outcome: tuple[str, int, Any] = ("done", i, text)
        except openai.RateLimitError as exc:
            outcome = ("429", i, exc)
        with lock:
            events.append(outcome)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    kinds = [kind for kind, _, _ in events]
    assert sorted(kinds) == ["429", "429", "done", "done"], events
    # The refusals came back while the two admitted streams were still waiting for their first token.
    assert kinds[:2] == ["429", "429"], kinds
    for kind, _, result in events:
        if kind == "done":
            assert result
        else:
            assert isinstance(result, openai.RateLimitError)
            body = result.body
            assert isinstance(body, dict)
            assert body["code"] == "rate_limit_exceeded"
            assert body["type"] == "requests"
            assert float(result.response.headers["retry-after"]) > 0
    # The slots came back when the streams ended.
    again = oai(gateway.url, key).chat.completions.create(model=MODEL, messages=user("after\n@sim tokens=2"))
    assert again.choices[0].message.content


def when(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def hold_the_slot(gw_url: str, headers: dict[str, str], prompt: str) -> dict[str, Any]:
    """An async task that takes the key's one concurrency slot; returned once it holds it."""
    status, _, holder = http_json(
        "POST", f"{gw_url}/v1/chat/completions", {"model": MODEL, "messages": user(prompt)}, headers
    )
    assert status == 202, holder
    assert isinstance(holder, dict)
    deadline = time.monotonic() + 10
    while True:
        _, _, state = http_json("GET", f"{gw_url}/v1/tasks/{holder['id']}", headers=headers)
        if isinstance(state, dict) and state["status"] == "processing":
            return holder
        assert time.monotonic() < deadline, "the first task never took the slot"
        time.sleep(0.05)


def test_async_tasks_over_the_concurrency_cap_wait_in_pending(gateway: Gateway) -> None:
    """runapi-contract §6.2: sync and stream calls over the cap get 429; async ones wait in
    `pending`, up to 10 times the cap, then 429; they run one at a time as the slot frees."""
    account_id, key = gateway.new_account("10")
    key_id = key_id_of(gateway, account_id)
    gateway.cli("keys", "set-limits", key_id, "--model-class", "standard", "--concurrent", "1")
    auth = {"Authorization": f"Bearer {key}"}
    asynchronous = {**auth, "Prefer": "respond-async"}
    chat_url = f"{gateway.url}/v1/chat/completions"
    holder = hold_the_slot(gateway.url, asynchronous, "hold\n@sim tokens=3 ttft_ms=2500")
    with pytest.raises(openai.RateLimitError):  # a sync call over the cap: 429 at once
        oai(gateway.url, key).chat.completions.create(model=MODEL, messages=user("sync\n@sim tokens=1"))

    body = {"model": MODEL, "messages": user("queued\n@sim tokens=2 ttft_ms=200")}
    queued: list[str] = []
    for _ in range(10):  # 10 x the cap of 1
        status, headers, task = http_json("POST", chat_url, body, asynchronous)
        assert status == 202, task
        assert isinstance(task, dict)
        assert task["status"] == "pending"
        assert headers["x-ratelimit-remaining-requests"]  # the state that made it wait
        queued.append(str(task["id"]))
    status, headers, refused = http_json("POST", chat_url, body, asynchronous)
    assert status == 429, refused
    assert isinstance(refused, dict)
    assert refused["error"]["code"] == "rate_limit_exceeded"
    assert "x-runapi-task-id" not in headers
    _, _, waiting = http_json("GET", f"{gateway.url}/v1/tasks/{queued[0]}", headers=auth)
    assert isinstance(waiting, dict)
    assert waiting["status"] == "pending"
    first = get_task(gateway, key, str(holder["id"]), timeout=30)
    assert first["status"] == "completed"
    done = [get_task(gateway, key, task_id, timeout=60) for task_id in queued]
    assert [t["status"] for t in done] == ["completed"] * 10
    assert all(t["cost"]["amount_micros"] > 0 for t in done)
    # One slot: each ran after the one before it (the slot is given back just before the task's
    # end is stamped, so allow a few ms; two running at once would overlap by the 200 ms wait).
    spans = sorted((when(t["started_at"]), when(t["completed_at"])) for t in [first, *done])
    assert all(b[0] >= a[1] - 0.05 for a, b in itertools.pairwise(spans)), spans
    charged = [e["task_id"] for e in ledger_of(gateway_db(gateway), account_id) if e["type"] == "charge"]
    assert len(set(charged)) == len(charged)  # each once
    assert {holder["id"], *queued} <= set(charged)


def test_a_task_still_waiting_at_its_deadline_fails_and_costs_nothing(
    simulator: Proc, own_database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "[tasks]\ndeadline_seconds = 1.5\n")
    env = gateway_env(own_database_url, simulator.url, RUNAPI_CONFIG=config)
    with running_gateway(env, "0") as gw:
        account_id, key = gw.new_account("5")
        gw.cli(
            "keys", "set-limits", key_id_of(gw, account_id), "--model-class", "standard", "--concurrent", "1"
        )
        asynchronous = {"Authorization": f"Bearer {key}", "Prefer": "respond-async"}
        chat_url = f"{gw.url}/v1/chat/completions"
        _, _, holder = http_json(
            "POST",
            chat_url,
            {"model": MODEL, "messages": user("hold\n@sim tokens=2 ttft_ms=4000")},
            asynchronous,
        )
        assert isinstance(holder, dict)
        time.sleep(0.3)  # the first task takes the slot (it is the only one of this key)
        status, _, waiting = http_json(
            "POST", chat_url, {"model": MODEL, "messages": user("waits\n@sim tokens=2")}, asynchronous
        )
        assert status == 202, waiting
        assert isinstance(waiting, dict)
        failed = get_task(gw, key, str(waiting["id"]), timeout=30)
        assert (failed["status"], failed["error_code"], failed["started_at"]) == (
            "failed",
            "rate_limit_exceeded",
            None,
        )
        assert failed["cost"]["amount_micros"] == 0
        assert get_task(gw, key, str(holder["id"]), timeout=30)["status"] == "completed"
        entries = [
            e for e in ledger_of(gw.env["RUNAPI_DATABASE_URL"], account_id) if e["task_id"] == waiting["id"]
        ]
        assert sorted(e["type"] for e in entries) == ["hold", "hold_release"]  # held, then released
        assert sum(int(e["amount_micros"]) for e in entries) == 0
        # Its place in the queue was given back: a new holder, and again 10 (10 x the cap) wait.
        _, _, holder = http_json(
            "POST",
            chat_url,
            {"model": MODEL, "messages": user("hold\n@sim tokens=2 ttft_ms=1000")},
            asynchronous,
        )
        time.sleep(0.3)
        statuses = [
            http_json(
                "POST", chat_url, {"model": MODEL, "messages": user(f"q{i}\n@sim tokens=1")}, asynchronous
            )[0]
            for i in range(11)
        ]
        assert statuses == [202] * 10 + [429]


@needs_postgres_and_redis
def test_the_queue_for_a_slot_is_bounded_across_processes(simulator: Proc) -> None:
    """10 times the cap wait in all processes together (the places are in Redis), not in each."""
    with two_processes_one_key(simulator, "--concurrent", "1") as pair:
        key = pair.first.api_key
        asynchronous = {"Authorization": f"Bearer {key}", "Prefer": "respond-async"}
        urls = [f"{gw}/v1/chat/completions" for gw in (pair.first.url, pair.second.url)]

        def submit(count: int, label: str) -> list[tuple[int, dict[str, str], Any]]:
            """`count` async calls, alternating between the two processes."""
            return [
                http_json(
                    "POST",
                    urls[i % 2],
                    {"model": MODEL, "messages": user(f"{label} {i}\n@sim tokens=1 ttft_ms=50")},
                    asynchronous,
                )
                for i in range(count)
            ]

        holder = hold_the_slot(pair.first.url, asynchronous, "hold\n@sim tokens=2 ttft_ms=3000")
        answers = submit(16, "queued")
        assert [status for status, _, _ in answers] == [202] * 10 + [429] * 6
        queued = [str(task["id"]) for _, _, task in answers[:10] if isinstance(task, dict)]
        done = [get_task(pair.first, key, task_id, timeout=60) for task_id in queued]
        assert [t["status"] for t in done] == ["completed"] * 10
        assert get_task(pair.first, key, str(holder["id"]))["status"] == "completed"
        # The places were given back as the tasks ran: the queue takes 10 again.
        hold_the_slot(pair.second.url, asynchronous, "hold\n@sim tokens=2 ttft_ms=1500")
        statuses = [status for status, _, _ in submit(11, "again")]
        assert statuses == [202] * 10 + [429]
