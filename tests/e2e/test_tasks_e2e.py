"""Tasks end to end (issue 7): every generation is a task, in every receive mode, through the real
gateway and the real simulator, with the official SDKs for the surfaces and raw HTTP for the rest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import BACKENDS, database_for
from tests.procs import (
    Gateway,
    Proc,
    Tenant,
    db_rows,
    drop_postgres,
    gateway_env,
    http_json,
    http_raw,
    new_tenant,
    running_gateway,
    start_gateway_process,
    wait_for,
)

MODEL = "MiniMax-M2.7"
TERMINAL = {"completed", "failed", "canceled"}


@pytest.fixture(scope="module")
def tenant(gateway: Gateway) -> Tenant:
    return new_tenant(gateway)


def oai(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def chat_body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], **extra}


def get_task(gw: Gateway, key: str, ident: str) -> tuple[int, dict[str, str], Any]:
    return http_json("GET", f"{gw.url}/v1/tasks/{ident}", headers=auth(key))


def wait_task(gw: Gateway, key: str, ident: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll `GET /v1/tasks/{id}` until the task is terminal (bounded)."""

    def terminal() -> dict[str, Any] | None:
        status, _, body = get_task(gw, key, ident)
        if status == 200 and isinstance(body, dict) and body["status"] in TERMINAL:
            return body
        return None

    task: dict[str, Any] = wait_for(terminal, timeout, 0.1, f"task {ident} to end")
    return task


def wait_processing(gw: Gateway, key: str, task_id: str) -> None:
    """Until the upstream call of an async task has started (bounded)."""
    wait_for(lambda: get_task(gw, key, task_id)[2]["status"] == "processing", 10, 0.05, "processing")


def ledger(gw: Gateway, task_id: str) -> list[dict[str, Any]]:
    return db_rows(
        gw.env["RUNAPI_DATABASE_URL"],
        "SELECT type, amount_micros FROM ledger_entries WHERE task_id = :t ORDER BY created_at",
        t=task_id,
    )


def charge_of(gw: Gateway, task_id: str) -> int:
    """The charge the ledger posted for a task, as a positive amount (0 when none)."""
    charges = [r["amount_micros"] for r in ledger(gw, task_id) if r["type"] == "charge"]
    assert len(charges) <= 1, charges
    return -int(charges[0]) if charges else 0


def sse_events(raw: bytes) -> list[dict[str, str]]:
    """Split an SSE body into events (`id`, `event`, `data` fields); comments are dropped."""
    events: list[dict[str, str]] = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            events.append(fields)
    return events


def assert_task_object(task: dict[str, Any], *, endpoint: str, surface_prefix: str) -> None:
    """The §3.5 fields every finished task carries."""
    assert task["object"] == "task"
    assert task["id"].startswith("task_")
    assert task["surface_id"] == surface_prefix + task["id"].removeprefix("task_")
    assert task["endpoint"] == endpoint
    assert task["status"] == "completed"
    assert task["model"] == MODEL
    for stamp in ("created_at", "started_at", "completed_at", "expires_at"):
        assert isinstance(task[stamp], str), stamp
        assert task[stamp].endswith("Z"), stamp
    usage = task["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["usage_source"] == "upstream"
    cost = task["cost"]
    assert cost["currency"] == "USD"
    assert cost["amount_micros"] > 0
    assert cost["billed"] is True
    assert cost["amount"] == f"{cost['amount_micros'] / 1_000_000:.6f}"
    assert task["error"] is None
    assert task["error_code"] is None
    assert task["data_removed"] is False


# ---------------------------------------------------------------- 1. ids, task object, listing


def test_every_surface_and_mode_returns_a_task_id_and_a_retrievable_task(
    gateway: Gateway, tenant: Tenant
) -> None:
    key, marker = tenant.api_key, f"zqx{uuid.uuid4().hex}"
    prompt = f"Remember {marker} please\n@sim tokens=4 reasoning=2"
    client = oai(gateway, key)
    seen: list[tuple[str, str, str, str]] = []  # (task id, surface id, endpoint, client request id)

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"X-Client-Request-Id": "crid-sync"},
    )
    completion = raw.parse()
    assert raw.headers["X-Client-Request-Id"] == "crid-sync"
    seen.append((raw.headers["X-RunAPI-Task-Id"], completion.id, "chat.completions", "crid-sync"))

    with client.chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        extra_headers={"X-Client-Request-Id": "crid-stream"},
    ) as streamed:
        # The headers are complete before the body is read: the id is there before the first event.
        stream_task = streamed.headers["X-RunAPI-Task-Id"]
        assert streamed.headers["X-Client-Request-Id"] == "crid-stream"
        chunks = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
    assert chunks
    assert all(c["id"] == chunks[0]["id"] for c in chunks)
    seen.append((stream_task, chunks[0]["id"], "chat.completions", "crid-stream"))

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    raw_msg = claude.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": prompt}],
        extra_headers={"X-Client-Request-Id": "crid-messages"},
    )
    assert raw_msg.headers["X-Client-Request-Id"] == "crid-messages"
    seen.append((raw_msg.headers["X-RunAPI-Task-Id"], raw_msg.parse().id, "messages", "crid-messages"))

    raw_resp = client.responses.with_raw_response.create(
        model=MODEL, input=prompt, extra_headers={"X-Client-Request-Id": "crid-responses"}
    )
    assert raw_resp.headers["X-Client-Request-Id"] == "crid-responses"
    seen.append((raw_resp.headers["X-RunAPI-Task-Id"], raw_resp.parse().id, "responses", "crid-responses"))

    prefixes = {"chat.completions": "chatcmpl-", "messages": "msg_", "responses": "resp_"}
    for task_id, surface_id, endpoint, crid in seen:
        assert task_id.startswith("task_")
        task = wait_task(gateway, key, task_id)
        assert_task_object(task, endpoint=endpoint, surface_prefix=prefixes[endpoint])
        assert task["surface_id"] == surface_id
        assert task["client_request_id"] == crid
        assert task["response"]["status"] == 200
        assert task["response"]["body"]["id"] == surface_id
        # The surface id names the same task.
        status, headers, by_surface = get_task(gateway, key, surface_id)
        assert status == 200
        assert by_surface["id"] == task_id
        assert headers["x-runapi-task-id"] == task_id
        # The prompt (with its unique marker) is nowhere in what the task serves.
        assert marker not in json.dumps(task)
    assert [t["streamed"] for t in (wait_task(gateway, key, s[0]) for s in seen)] == [
        False,
        True,
        False,
        False,
    ]

    # Nor in any stored column of these tasks, nor anywhere in the task table.
    rows = db_rows(
        gateway.env["RUNAPI_DATABASE_URL"], "SELECT * FROM tasks WHERE account_id = :a", a=tenant.account_id
    )
    assert {r["id"] for r in rows} >= {s[0] for s in seen}
    assert marker not in repr(rows)
    database = gateway.env["RUNAPI_DATABASE_URL"]
    if database.startswith("sqlite"):
        # The whole database file (and its WAL) holds no trace of the input.
        path = Path(database.split(":///", 1)[1])
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                assert marker.encode() not in part.read_bytes(), part


def test_a_task_is_visible_only_to_its_own_account(gateway: Gateway, tenant: Tenant) -> None:
    raw = oai(gateway, tenant.api_key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "mine\n@sim tokens=2"}]
    )
    task_id = raw.headers["X-RunAPI-Task-Id"]
    wait_task(gateway, tenant.api_key, task_id)
    stranger = new_tenant(gateway, credit="1", tier=None)
    for ident in (task_id, raw.parse().id):
        status, _, body = get_task(gateway, stranger.api_key, ident)
        assert status == 404, body
        assert isinstance(body, dict)
        assert body["error"]["message"]
        status, _, _ = http_json("POST", f"{gateway.url}/v1/tasks/{ident}/cancel", {}, auth(stranger.api_key))
        assert status == 404
    status, _, page = http_json("GET", f"{gateway.url}/v1/tasks?limit=100", headers=auth(stranger.api_key))
    assert status == 200
    assert isinstance(page, dict)
    assert page["data"] == []


def test_task_list_pages_newest_first_with_limit_and_after(gateway: Gateway) -> None:
    own = new_tenant(gateway)
    client = oai(gateway, own.api_key)
    made = []
    for n in range(5):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"item {n}\n@sim tokens=1 reasoning=0"}]
        )
        made.append(raw.headers["X-RunAPI-Task-Id"])
    for task_id in made:
        wait_task(gateway, own.api_key, task_id)

    pages: list[list[dict[str, Any]]] = []
    after = ""
    for _ in range(5):  # bounded: 5 tasks in pages of 2 take 3 pages
        status, _, page = http_json(
            "GET",
            f"{gateway.url}/v1/tasks?limit=2{'&after=' + after if after else ''}",
            headers=auth(own.api_key),
        )
        assert status == 200
        assert isinstance(page, dict)
        assert page["object"] == "list"
        assert len(page["data"]) <= 2
        pages.append(page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
        assert after == page["data"][-1]["id"]
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [t["id"] for p in pages for t in p]
    assert listed == list(reversed(made)), "newest first, every task exactly once"
    # List items leave the body out.
    assert all("body" not in (t["response"] or {}) for p in pages for t in p)
    status, _, bad = http_json("GET", f"{gateway.url}/v1/tasks?limit=101", headers=auth(own.api_key))
    assert status == 400, bad


# ---------------------------------------------------------------- 2. async mode


def test_respond_async_gives_202_then_the_hybrid_envelope(gateway: Gateway, tenant: Tenant) -> None:
    status, headers, task = http_json(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        chat_body("later please\n@sim tokens=3 ttft_ms=300"),
        auth(tenant.api_key, Prefer="respond-async", **{"X-Client-Request-Id": "order-123"}),
    )
    assert status == 202, task
    assert isinstance(task, dict)
    task_id = headers["x-runapi-task-id"]
    assert headers["location"] == f"/v1/tasks/{task_id}"
    assert headers["retry-after"] == "2"
    assert task["id"] == task_id
    assert task["status"] == "pending"
    assert task["response"] is None
    assert task["client_request_id"] == "order-123"

    done = wait_task(gateway, tenant.api_key, task_id)
    assert done["status"] == "completed"
    envelope = done["response"]
    assert envelope["status"] == 200
    assert envelope["content_type"] == "application/json"
    assert envelope["headers"]["X-RunAPI-Task-Id"] == task_id
    body = envelope["body"]
    assert body["object"] == "chat.completion"
    assert body["id"] == done["surface_id"]
    assert body["choices"][0]["message"]["content"]
    assert done["cost"]["amount_micros"] == charge_of(gateway, task_id) > 0


def test_prefer_wait_answers_like_sync_when_fast_and_202_when_slow(gateway: Gateway, tenant: Tenant) -> None:
    status, headers, body = http_json(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        chat_body("quick\n@sim tokens=2"),
        auth(tenant.api_key, Prefer="wait=5"),
    )
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-" + headers["x-runapi-task-id"].removeprefix("task_")

    status, headers, task = http_json(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        chat_body("slow\n@sim tokens=2 ttft_ms=3000"),
        auth(tenant.api_key, Prefer="wait=1"),
    )
    assert status == 202, task
    assert isinstance(task, dict)
    assert task["status"] in ("pending", "processing")
    assert headers["location"] == f"/v1/tasks/{task['id']}"
    assert headers["retry-after"] == "2"
    assert wait_task(gateway, tenant.api_key, task["id"])["status"] == "completed"


def test_responses_background_is_queued_then_retrieved(gateway: Gateway, tenant: Tenant) -> None:
    client = oai(gateway, tenant.api_key)
    raw = client.responses.with_raw_response.create(
        model=MODEL, input="in the background\n@sim tokens=3 ttft_ms=300", background=True
    )
    queued = raw.parse()
    assert raw.http_response.status_code == 200
    assert queued.status == "queued"
    assert queued.id.startswith("resp_")
    assert raw.headers["X-RunAPI-Task-Id"] == "task_" + queued.id.removeprefix("resp_")

    def finished() -> Any:
        got = client.responses.retrieve(queued.id)
        return got if got.status in ("completed", "failed", "cancelled", "incomplete") else None

    final = wait_for(finished, 30, 0.2, "the background response")
    assert final.status == "completed"
    assert final.output_text
    assert final.usage is not None
    assert final.usage.output_tokens > 0


def test_cancel_a_slow_async_task_charges_nothing(gateway: Gateway, tenant: Tenant) -> None:
    status, headers, task = http_json(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        chat_body("never mind\n@sim tokens=3 ttft_ms=20000"),
        auth(tenant.api_key, Prefer="respond-async"),
    )
    assert status == 202, task
    task_id = headers["x-runapi-task-id"]
    wait_processing(gateway, tenant.api_key, task_id)
    status, _, canceled = http_json(
        "POST", f"{gateway.url}/v1/tasks/{task_id}/cancel", {}, auth(tenant.api_key)
    )
    assert status == 200, canceled
    assert isinstance(canceled, dict)
    assert canceled["status"] == "canceled"
    final = wait_task(gateway, tenant.api_key, task_id)
    assert final["status"] == "canceled"
    assert final["cost"]["amount_micros"] == 0
    assert final["cost"]["billed"] is False
    entries = ledger(gateway, task_id)
    assert [e["type"] for e in entries if e["type"] == "charge"] == []
    assert sum(int(e["amount_micros"]) for e in entries if e["type"] in ("hold", "hold_release")) == 0
    # Cancelling again is a no-op on a terminal task.
    status, _, again = http_json("POST", f"{gateway.url}/v1/tasks/{task_id}/cancel", {}, auth(tenant.api_key))
    assert status == 200
    assert isinstance(again, dict)
    assert again["status"] == "canceled"


# ---------------------------------------------------------------- 3. events replay


def test_events_replay_a_streamed_task_and_resume_after_n(gateway: Gateway, tenant: Tenant) -> None:
    status, headers, raw = http_raw(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        chat_body("stream it\n@sim tokens=5 reasoning=2", stream=True),
        auth(tenant.api_key),
    )
    assert status == 200
    task_id = headers["x-runapi-task-id"]
    live_events = sse_events(raw)

    status, headers, raw = http_raw(
        "GET", f"{gateway.url}/v1/tasks/{task_id}/events", headers=auth(tenant.api_key)
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    replayed = sse_events(raw)
    ids = [int(e["id"]) for e in replayed if "id" in e]
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) >= 5
    # The replay carries exactly the frames the live client got, finish chunk and [DONE] included.
    assert [e["data"] for e in replayed] == [e["data"] for e in live_events]
    assert replayed[-1]["data"] == "[DONE]"

    n = 3
    _, _, raw = http_raw(
        "GET", f"{gateway.url}/v1/tasks/{task_id}/events?starting_after={n}", headers=auth(tenant.api_key)
    )
    resumed = sse_events(raw)
    assert int(resumed[0]["id"]) == n + 1
    assert [e["data"] for e in resumed] == [e["data"] for e in replayed[n:]]
    _, _, raw = http_raw(
        "GET",
        f"{gateway.url}/v1/tasks/{task_id}/events",
        headers={**auth(tenant.api_key), "Last-Event-ID": str(n)},
    )
    assert sse_events(raw) == resumed


@pytest.mark.parametrize(
    ("path", "body", "last_event"),
    [
        (
            "/v1/responses",
            {"model": MODEL, "input": "replay me\n@sim tokens=4 reasoning=2", "stream": True},
            "response.completed",
        ),
        (
            "/v1/messages",
            {
                "model": MODEL,
                "max_tokens": 200,
                "stream": True,
                "messages": [{"role": "user", "content": "replay me\n@sim tokens=4 reasoning=2"}],
            },
            "message_stop",
        ),
    ],
    ids=["responses", "messages"],
)
def test_events_replay_every_surface_in_its_own_format(
    gateway: Gateway, tenant: Tenant, path: str, body: dict[str, Any], last_event: str
) -> None:
    headers = auth(tenant.api_key, **{"anthropic-version": "2023-06-01"})
    status, got, raw = http_raw("POST", f"{gateway.url}{path}", body, headers)
    assert status == 200
    live = [(e.get("event"), e["data"]) for e in sse_events(raw) if e.get("event") != "ping"]
    task_id = got["x-runapi-task-id"]
    _, _, raw = http_raw("GET", f"{gateway.url}/v1/tasks/{task_id}/events", headers=auth(tenant.api_key))
    replayed = [(e.get("event"), e["data"]) for e in sse_events(raw) if e.get("event") != "ping"]
    assert replayed == live
    assert replayed[-1][0] == last_event


def test_events_of_an_async_task_end_like_a_stream(gateway: Gateway, tenant: Tenant) -> None:
    status, headers, _ = http_json(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        chat_body("async events\n@sim tokens=3 reasoning=0"),
        auth(tenant.api_key, Prefer="respond-async"),
    )
    assert status == 202
    task_id = headers["x-runapi-task-id"]
    # Followed live (or replayed, if it already ended): either way it ends with the finish.
    _, _, raw = http_raw("GET", f"{gateway.url}/v1/tasks/{task_id}/events", headers=auth(tenant.api_key))
    events = sse_events(raw)
    chunks = [json.loads(e["data"]) for e in events if e["data"].startswith("{")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["data"] == "[DONE]"


# ---------------------------------------------------------------- 4. idempotency


def test_twenty_concurrent_requests_with_one_idempotency_key_make_one_generation(gateway: Gateway) -> None:
    own = new_tenant(gateway)
    idem = f"idem-{uuid.uuid4().hex}"
    body = chat_body("exactly once\n@sim tokens=4 ttft_ms=500")
    headers = auth(own.api_key, **{"Idempotency-Key": idem})

    def call(_: int) -> tuple[int, dict[str, str], Any]:
        return http_json("POST", f"{gateway.url}/v1/chat/completions", body, headers)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(call, range(20)))
    statuses = [r[0] for r in results]
    assert statuses == [200] * 20, [r[2] for r in results if r[0] != 200]
    task_ids = {r[1]["x-runapi-task-id"] for r in results}
    assert len(task_ids) == 1
    assert len({json.dumps(r[2], sort_keys=True) for r in results}) == 1, "every caller gets the same body"
    assert sum(1 for r in results if r[1].get("x-runapi-idempotent-replay") == "true") == 19
    (task_id,) = task_ids

    database = gateway.env["RUNAPI_DATABASE_URL"]
    wait_task(gateway, own.api_key, task_id)
    rows = db_rows(database, "SELECT id FROM tasks WHERE account_id = :a", a=own.account_id)
    assert [r["id"] for r in rows] == [task_id], "one task, so one upstream generation"
    charges = db_rows(
        database,
        "SELECT task_id FROM ledger_entries WHERE account_id = :a AND type = 'charge'",
        a=own.account_id,
    )
    assert [c["task_id"] for c in charges] == [task_id], "one charge"

    status, _, conflict = http_json(
        "POST", f"{gateway.url}/v1/chat/completions", chat_body("a different body\n@sim tokens=4"), headers
    )
    assert status == 409, conflict
    assert isinstance(conflict, dict)
    assert conflict["error"]["code"] == "idempotency_key_reused"


# ---------------------------------------------------------------- 6. stored cost == ledger charge


def test_stored_cost_equals_the_ledger_charge(gateway: Gateway) -> None:
    own = new_tenant(gateway)
    client = oai(gateway, own.api_key)
    task_ids = []
    for prompt in (
        "first call\n@sim tokens=7 reasoning=3",
        "second call\n@sim tokens=30 reasoning=5 cached=4",
    ):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}]
        )
        task_ids.append(raw.headers["X-RunAPI-Task-Id"])
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "streamed\n@sim tokens=12"}], stream=True
    ) as streamed:
        task_ids.append(streamed.headers["X-RunAPI-Task-Id"])
        streamed.read()
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=own.api_key, max_retries=0)
    raw_msg = claude.messages.with_raw_response.create(
        model="MiniMax-M2.5",
        max_tokens=300,
        messages=[{"role": "user", "content": "another model\n@sim tokens=9"}],
    )
    task_ids.append(raw_msg.headers["X-RunAPI-Task-Id"])

    for task_id in task_ids:
        task = wait_task(gateway, own.api_key, task_id)
        assert task["status"] == "completed"
        cost = task["cost"]
        assert cost["amount_micros"] > 0
        assert cost["amount_micros"] == charge_of(gateway, task_id), task_id
    # The first call per model is the free one: charged and offset by an equal grant (§7).
    first = ledger(gateway, task_ids[0])
    grants = [int(e["amount_micros"]) for e in first if e["type"] == "free_grant"]
    if grants:
        assert grants == [charge_of(gateway, task_ids[0])]


# ---------------------------------------------------------------- 5. restart with async tasks in flight


@pytest.fixture(params=BACKENDS)
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = database_for(request.param, tmp_path)
    yield url
    if request.param == "postgres":
        drop_postgres(url)


def test_restart_fails_in_flight_async_tasks_and_settles_the_ledger(
    simulator: Proc, own_database: str
) -> None:
    env = gateway_env(own_database, simulator.url)
    with running_gateway(env, "100") as first:
        gw_env, url = first.env, first.url
        gw = Gateway(first.proc, gw_env, first.api_key, first.account_id)
        own = new_tenant(gw)
        task_ids = []
        for n in range(4):
            status, headers, task = http_json(
                "POST",
                f"{url}/v1/chat/completions",
                chat_body(f"slow {n}\n@sim tokens=3 ttft_ms=20000"),
                auth(own.api_key, Prefer="respond-async"),
            )
            assert status == 202, task
            task_ids.append(headers["x-runapi-task-id"])
        for task_id in task_ids:
            wait_processing(gw, own.api_key, task_id)
        held = db_rows(own_database, "SELECT held_micros FROM accounts WHERE id = :a", a=own.account_id)
        assert int(held[0]["held_micros"]) > 0, "the in-flight tasks hold funds"
        first.proc.stop(sig_kill=True)

    again = start_gateway_process(env)
    try:
        restarted = Gateway(again, env, own.api_key, own.account_id)
        for task_id in task_ids:
            task = wait_task(restarted, own.api_key, task_id, timeout=30)
            assert task["status"] == "failed", task
            assert task["error_code"] == "gateway_restarted"
            assert task["cost"] is None or task["cost"]["amount_micros"] == 0
        open_holds = db_rows(own_database, "SELECT task_id FROM holds WHERE status = 'open'")
        assert open_holds == []
        account = db_rows(own_database, "SELECT held_micros FROM accounts WHERE id = :a", a=own.account_id)
        assert int(account[0]["held_micros"]) == 0
        entries = db_rows(
            own_database,
            "SELECT type, amount_micros FROM ledger_entries"
            " WHERE account_id = :a AND type IN ('hold', 'hold_release')",
            a=own.account_id,
        )
        assert sum(int(e["amount_micros"]) for e in entries) == 0
        assert not db_rows(
            own_database,
            "SELECT id FROM ledger_entries WHERE account_id = :a AND type = 'charge'",
            a=own.account_id,
        )
    finally:
        again.stop()
