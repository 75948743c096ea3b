"""The task routes over HTTP, on a real aiohttp server with the real store and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update
from standardwebhooks import Webhook

from runapi.api import tasks as task_routes
from runapi.app import errors_middleware
from runapi.auth import AccountRepository, KeyRepository
from runapi.catalog import load_catalog
from runapi.providers.registry import ProviderRegistry
from runapi.services import SERVICES, Services
from runapi.store.database import Database
from runapi.store.schema import tasks as tasks_table
from runapi.tasks.facade import Tasks
from runapi.tasks.records import TaskOutcome, TaskRecord

from .conftest import make_settings
from .helpers import completed, new_record


class Caller:
    def __init__(self, account_id: int, key_id: str, secret: str) -> None:
        self.account_id = account_id
        self.key_id = key_id
        self.auth = {"Authorization": f"Bearer {secret}"}


class Env:
    def __init__(
        self, client: TestClient[web.Request, web.Application], tasks: Tasks, a: Caller, b: Caller
    ) -> None:
        self.client = client
        self.tasks = tasks
        self.a = a
        self.b = b

    def record(self, **kw: Any) -> TaskRecord:
        return new_record(self.tasks.settings, account_id=self.a.account_id, api_key_id=self.a.key_id, **kw)


async def caller(db: Database) -> Caller:
    account = await AccountRepository(db).create("routes")
    key = await KeyRepository(db, cache_seconds=0).create(account.id)
    return Caller(account.id, key.id, key.secret)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    settings = make_settings()
    tasks = Tasks(db, settings)
    services = Services(
        settings=settings,
        db=db,
        catalog=load_catalog(),
        accounts=AccountRepository(db),
        keys=KeyRepository(db, cache_seconds=0),
        providers=ProviderRegistry({}),
        extras={task_routes.TASKS_EXTRA: tasks},
    )
    app = web.Application(middlewares=[errors_middleware])
    app[SERVICES] = services
    app.router.add_routes(task_routes.routes())
    await tasks.start()
    client = TestClient(TestServer(app))
    await client.start_server()
    yield Env(client, tasks, await caller(db), await caller(db))
    await client.close()
    await tasks.close()


async def test_get_own_task_and_404_for_others(env: Env) -> None:
    record = env.record(client_request_id="order-1")
    await env.tasks.store.create(record)
    r = await env.client.get(f"/v1/tasks/{record.id}", headers=env.a.auth)
    assert r.status == 200
    assert r.headers["Retry-After"] == "2"
    assert r.headers["X-RunAPI-Task-Id"] == record.id
    assert r.headers["x-request-id"].startswith("req_")
    body = await r.json()
    assert body["status"] == "pending"
    assert body["response"] is None
    assert body["client_request_id"] == "order-1"

    await env.tasks.store.finish(record.id, completed())
    r = await env.client.get(f"/v1/tasks/{record.surface_id}", headers=env.a.auth)
    body = await r.json()
    assert "Retry-After" not in r.headers
    assert body["status"] == "completed"
    assert body["response"]["status"] == 200
    assert body["response"]["body"]["object"] == "chat.completion"

    r = await env.client.get(f"/v1/tasks/{record.id}", headers=env.b.auth)
    assert r.status == 404
    error = (await r.json())["error"]
    assert error["code"] == "task_not_found"
    assert "message" in error
    assert (await env.client.get(f"/v1/tasks/{record.id}")).status == 401


async def test_list_pages_without_bodies(env: Env) -> None:
    ids = []
    for _ in range(5):
        record = env.record()
        await env.tasks.store.create(record)
        await env.tasks.store.finish(record.id, completed())
        ids.append(record.id)
    r = await env.client.get("/v1/tasks?limit=3", headers=env.a.auth)
    page = await r.json()
    assert page["object"] == "list"
    assert page["has_more"] is True
    assert [t["id"] for t in page["data"]] == ids[::-1][:3]
    assert page["last_id"] == ids[::-1][2]
    assert all("body" not in t["response"] for t in page["data"])
    r = await env.client.get(f"/v1/tasks?limit=3&after={page['last_id']}", headers=env.a.auth)
    rest = await r.json()
    assert [t["id"] for t in rest["data"]] == ids[::-1][3:]
    assert rest["has_more"] is False
    assert (await (await env.client.get("/v1/tasks", headers=env.b.auth)).json())["data"] == []
    bad = await env.client.get("/v1/tasks?limit=500", headers=env.a.auth)
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "invalid_value"
    assert (await env.client.get("/v1/tasks?status=done", headers=env.a.auth)).status == 400


async def test_cancel_a_running_task(env: Env) -> None:
    record = env.record(mode="async")
    await env.tasks.store.create(record, durable=True)
    started = asyncio.Event()

    async def generation() -> None:  # what the pipeline's async run does, reduced
        try:
            async with env.tasks.runner.slot():
                await env.tasks.store.mark_processing(record.id)
                started.set()
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await env.tasks.store.finish(
                record.id, TaskOutcome(status="canceled", zero_charge_reason="failed")
            )
            raise

    env.tasks.runner.submit(record.id, generation())
    await started.wait()
    assert (await env.client.post(f"/v1/tasks/{record.id}/cancel", headers=env.b.auth)).status == 404
    r = await env.client.post(f"/v1/tasks/{record.id}/cancel", headers=env.a.auth)
    assert r.status == 200
    assert (await r.json())["status"] == "canceled"
    again = await env.client.post(f"/v1/tasks/{record.id}/cancel", headers=env.a.auth)
    assert (await again.json())["status"] == "canceled"  # a no-op on an ended task


async def test_events_replay_and_follow_over_http(env: Env) -> None:
    record = env.record(mode="stream", streamed=True)
    await env.tasks.store.create(record)
    env.tasks.events.open(record.id)
    for i in (1, 2, 3):
        env.tasks.events.append(record.id, b'data: {"n":%d}\n\n' % i)

    async def read(**kw: str) -> str:
        headers = dict(env.a.auth)
        query = ""
        if "starting_after" in kw:
            query = f"?starting_after={kw['starting_after']}"
        if "last_event_id" in kw:
            headers["Last-Event-ID"] = kw["last_event_id"]
        r = await env.client.get(f"/v1/tasks/{record.id}/events{query}", headers=headers)
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        return await r.text()

    follower = asyncio.create_task(read(starting_after="1"))
    await asyncio.sleep(0.05)
    env.tasks.events.append(record.id, b"data: [DONE]\n\n")
    env.tasks.events.finish(record.id)
    text = await asyncio.wait_for(follower, 10)
    assert text == 'id: 2\ndata: {"n":2}\n\nid: 3\ndata: {"n":3}\n\nid: 4\ndata: [DONE]\n\n'
    assert await read(last_event_id="3") == "id: 4\ndata: [DONE]\n\n"
    bad = await env.client.get(f"/v1/tasks/{record.id}/events?starting_after=x", headers=env.a.auth)
    assert bad.status == 400


async def test_events_of_a_finished_task_elsewhere_are_synthesized_then_gone(env: Env, db: Database) -> None:
    record = env.record()
    await env.tasks.store.create(record)
    await env.tasks.store.finish(record.id, completed())
    r = await env.client.get(f"/v1/tasks/{record.id}/events", headers=env.a.auth)
    assert await r.text() == 'id: 1\ndata: {"id":"chatcmpl-x","object":"chat.completion"}\n\n'
    await env.tasks.store.flush()
    async with db.begin() as conn:
        await conn.execute(
            update(tasks_table)
            .where(tasks_table.c.id == record.id)
            .values(completed_at=datetime.now(UTC) - timedelta(hours=1))
        )
    gone = await env.client.get(f"/v1/tasks/{record.id}/events", headers=env.a.auth)
    assert gone.status == 410
    assert (await gone.json())["error"]["code"] == "events_expired"


async def test_deliveries_redeliver_and_secret_routes(env: Env) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=200)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/hook"))
    record = env.record(callback_url=url)
    await env.tasks.store.create(record)
    await env.tasks.store.finish(record.id, completed())

    async def attempts(n: int) -> list[dict[str, object]]:
        while True:
            r = await env.client.get(f"/v1/tasks/{record.id}/deliveries", headers=env.a.auth)
            body = await r.json()
            if len(body["data"]) >= n:
                return list(body["data"])
            await asyncio.sleep(0.02)

    first = await asyncio.wait_for(attempts(1), 10)
    assert first[0]["status_code"] == 200
    assert first[0]["attempt"] == 1
    assert first[0]["type"] == "task.completed"
    r = await env.client.post(f"/v1/tasks/{record.id}/deliveries/redeliver", headers=env.a.auth)
    assert r.status == 202
    assert (await r.json())["webhook_id"] == first[0]["webhook_id"]
    both = await asyncio.wait_for(attempts(2), 10)
    assert [a["attempt"] for a in both] == [1, 2]

    r = await env.client.get(f"/api/v1/api_keys/{env.a.key_id}/webhook_secret", headers=env.a.auth)
    secret = (await r.json())["secret"]
    assert secret.startswith("whsec_")
    for headers, body in received:
        Webhook(secret).verify(body, headers)
    foreign = await env.client.get(f"/api/v1/api_keys/{env.a.key_id}/webhook_secret", headers=env.b.auth)
    assert foreign.status == 404
    r = await env.client.post(
        f"/api/v1/api_keys/{env.a.key_id}/webhook_secret/rotate",
        json={"keep_old_secret_active_for_24_hours": True},
        headers=env.a.auth,
    )
    rotated = await r.json()
    assert rotated["secret"] != secret
    assert rotated["previous_secret_expires_at"]
    bad = await env.client.post(
        f"/api/v1/api_keys/{env.a.key_id}/webhook_secret/rotate", data=b"{", headers=env.a.auth
    )
    assert bad.status == 400
    quiet = env.record()  # no callback_url: nothing to redeliver
    await env.tasks.store.create(quiet)
    none = await env.client.post(f"/v1/tasks/{quiet.id}/deliveries/redeliver", headers=env.a.auth)
    assert none.status == 404
    assert (await none.json())["error"]["code"] == "no_webhook_event"
    await server.close()
