"""Signed webhook delivery to a real receiver on 127.0.0.1, verified with `standardwebhooks`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiohttp import web
from sqlalchemy import select
from standardwebhooks import Webhook

from runapi.settings import Settings, TaskSettings, WebhookSettings
from runapi.store.database import Database
from runapi.store.schema import webhook_failing_urls, webhook_outbox, webhook_stopped_urls
from runapi.tasks.facade import Tasks
from runapi.tasks.records import ResponseEnvelope, TaskOutcome
from runapi.tasks.webhooks.dispatcher import parse_retry_after
from runapi.tasks.webhooks.outbox import event_payload

from .conftest import Key, make_key
from .helpers import completed, new_record


class Receiver:
    """A webhook endpoint that answers with the next scripted status and keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, body))
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)

    async def wait_for(self, count: int, within: float = 20.0) -> None:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), within)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[int]], Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def start(statuses: list[int]) -> Receiver:
        receiver = Receiver(statuses)
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        receiver.url = f"http://127.0.0.1:{port}/hook"
        runners.append(runner)
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()


def hook_settings(schedule: tuple[float, ...] = (0, 0.05, 0.05, 0.05)) -> Settings:
    return Settings(
        tasks=TaskSettings(flush_interval_ms=5.0),
        webhooks=WebhookSettings(
            allow_http=True,
            allow_private=True,
            retry_schedule=schedule,
            timeout_seconds=5.0,
            poll_interval_seconds=0.02,
        ),
    )


@pytest.fixture
async def tasks(db: Database) -> AsyncIterator[Tasks]:
    service = Tasks(db, hook_settings())
    await service.start()
    yield service
    await service.close()


async def finish_with_callback(tasks: Tasks, key: Key, url: str, **kw: Any) -> str:
    record = new_record(
        tasks.settings, account_id=key.account_id, api_key_id=key.key_id, callback_url=url, **kw
    )
    await tasks.store.create(record, durable=True)
    await tasks.store.mark_processing(record.id)
    await tasks.store.finish(record.id, completed())
    return record.id


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    """Poll the database until `check` holds (bounded by `within`)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the state lives in the database, not an Event
            await asyncio.sleep(0.02)


async def test_receiver_failing_twice_gets_the_third_signed_delivery(
    db: Database, tasks: Tasks, serve: Callable[[list[int]], Awaitable[Receiver]]
) -> None:
    key = await make_key(db)
    receiver = await serve([500, 500, 200])
    task_id = await finish_with_callback(tasks, key, receiver.url)
    await receiver.wait_for(3)

    secret = (await tasks.secrets.get(key.key_id, key.account_id)).secret
    ids = set()
    for headers, body in receiver.received:
        payload = Webhook(secret).verify(body, headers)  # raises on a bad signature
        ids.add(headers["webhook-id"])
        assert payload["type"] == "task.completed"
        assert payload["id"] == task_id
        assert payload["object"] == "task"
        assert payload["status"] == "completed"
        assert payload["response"]["body"] == {"id": "chatcmpl-x", "object": "chat.completion"}
        assert headers["content-type"] == "application/json"
    assert len(ids) == 1
    assert next(iter(ids)).startswith("evt_")

    async def recorded() -> bool:
        return (await tasks.store.get(task_id, key.account_id)).callback_succeeded is True

    await wait_until(recorded)
    attempts = await tasks.outbox.attempts(task_id)
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert all(a.type == "task.completed" and a.webhook_id in ids for a in attempts)


async def test_gone_stops_delivery_to_that_url_until_redelivered(
    db: Database, tasks: Tasks, serve: Callable[[list[int]], Awaitable[Receiver]]
) -> None:
    key = await make_key(db)
    receiver = await serve([410])
    first = await finish_with_callback(tasks, key, receiver.url)
    await receiver.wait_for(1)

    async def stopped() -> bool:
        return (await tasks.store.get(first, key.account_id)).callback_succeeded is False

    await wait_until(stopped)
    second = await finish_with_callback(tasks, key, receiver.url)

    async def second_stopped() -> bool:
        async with db.connect() as conn:
            status = (
                await conn.execute(select(webhook_outbox.c.status).where(webhook_outbox.c.task_id == second))
            ).scalar_one_or_none()
        return bool(status == "stopped")

    await wait_until(second_stopped)
    assert len(receiver.received) == 1  # nothing more was sent to that URL

    assert await tasks.outbox.redeliver(first) is not None
    await receiver.wait_for(2)
    assert receiver.received[1][0]["webhook-id"] == receiver.received[0][0]["webhook-id"]

    async def succeeded() -> bool:
        return (await tasks.store.get(first, key.account_id)).callback_succeeded is True

    await wait_until(succeeded)


async def test_a_url_failing_without_a_break_is_paused_until_redelivered(
    db: Database, serve: Callable[[list[int]], Awaitable[Receiver]]
) -> None:
    base = hook_settings(schedule=(0,) + (0.05,) * 40)
    settings = msgspec.structs.replace(
        base, webhooks=msgspec.structs.replace(base.webhooks, pause_after_seconds=0.5)
    )
    service = Tasks(db, settings)
    await service.start()
    key = await make_key(db)
    receiver = await serve([500, 200, *[500] * 60])

    # A success between failures starts the count again.
    first = await finish_with_callback(service, key, receiver.url)

    async def delivered() -> bool:
        return (await service.store.get(first, key.account_id)).callback_succeeded is True

    await wait_until(delivered)
    async with db.connect() as conn:
        assert (await conn.execute(select(webhook_failing_urls))).all() == []

    second = await finish_with_callback(service, key, receiver.url)

    async def paused() -> bool:
        return (await service.store.get(second, key.account_id)).callback_succeeded is False

    await wait_until(paused)
    attempts = await service.outbox.attempts(second)
    assert all(a.status_code == 500 for a in attempts)
    span = datetime.fromisoformat(attempts[-1].at.replace("Z", "+00:00")) - datetime.fromisoformat(
        attempts[0].at.replace("Z", "+00:00")
    )
    assert span.total_seconds() >= 0.45  # the pause came after failing that long (ms-rounded times)
    assert "the URL is paused" in (attempts[-1].error or "")
    assert not any("paused" in (a.error or "") for a in attempts[:-1])
    async with db.connect() as conn:
        stop = (await conn.execute(select(webhook_stopped_urls))).one()
    assert (stop.api_key_id, stop.url, stop.reason) == (key.key_id, receiver.url, "paused")

    # Paused: a new event for that URL is not sent.
    sent = len(receiver.received)
    third = await finish_with_callback(service, key, receiver.url)

    async def third_stopped() -> bool:
        return (await service.store.get(third, key.account_id)).callback_succeeded is False

    await wait_until(third_stopped)
    assert len(receiver.received) == sent

    # A redelivery lifts the pause; the receiver is back.
    receiver.statuses.clear()
    assert await service.outbox.redeliver(second) is not None

    async def resumed() -> bool:
        return (await service.store.get(second, key.account_id)).callback_succeeded is True

    await wait_until(resumed)
    assert len(receiver.received) == sent + 1
    await service.close()


async def test_schedule_runs_out_and_marks_the_callback_failed(
    db: Database, serve: Callable[[list[int]], Awaitable[Receiver]]
) -> None:
    service = Tasks(db, hook_settings(schedule=(0, 0.02)))
    await service.start()
    key = await make_key(db)
    receiver = await serve([500, 503, 500, 500])
    task_id = await finish_with_callback(service, key, receiver.url)

    async def failed() -> bool:
        return (await service.store.get(task_id, key.account_id)).callback_succeeded is False

    await wait_until(failed)
    assert len(receiver.received) == 2
    assert [a.status_code for a in await service.outbox.attempts(task_id)] == [500, 503]
    await service.close()


async def test_rotation_with_overlap_signs_with_both_secrets(
    db: Database, tasks: Tasks, serve: Callable[[list[int]], Awaitable[Receiver]]
) -> None:
    key = await make_key(db)
    old = (await tasks.secrets.get(key.key_id, key.account_id)).secret
    rotated = await tasks.secrets.rotate(key.key_id, key.account_id, keep_old_24h=True)
    assert rotated.secret != old
    assert rotated.secret.startswith("whsec_")
    assert rotated.previous_secret_expires_at is not None
    receiver = await serve([200])
    await finish_with_callback(tasks, key, receiver.url)
    await receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(rotated.secret).verify(body, headers)

    again = await tasks.secrets.rotate(key.key_id, key.account_id, keep_old_24h=False)
    assert await tasks.secrets.signing_secrets(key.key_id, datetime.now(UTC)) == [again.secret]


async def test_start_events_only_when_subscribed(
    db: Database, tasks: Tasks, serve: Callable[[list[int]], Awaitable[Receiver]]
) -> None:
    key = await make_key(db)
    receiver = await serve([])
    await finish_with_callback(tasks, key, receiver.url, webhook_events_filter=("start", "completed"))
    await receiver.wait_for(2)
    types = [msgspec.json.decode(body)["type"] for _, body in receiver.received]
    assert sorted(types) == ["task.completed", "task.started"]

    only_start = new_record(
        tasks.settings,
        account_id=key.account_id,
        api_key_id=key.key_id,
        callback_url=receiver.url,
        webhook_events_filter=("start",),
    )
    await tasks.store.create(only_start)
    await tasks.store.mark_processing(only_start.id)
    await tasks.store.finish(
        only_start.id, TaskOutcome(status="failed", error="boom", error_code="upstream_error")
    )
    await receiver.wait_for(3)
    await tasks.store.flush()
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                select(webhook_outbox.c.event_type).where(webhook_outbox.c.task_id == only_start.id)
            )
        ).all()
    assert [r.event_type for r in rows] == ["task.started"]


def test_oversized_payload_leaves_the_body_out() -> None:
    settings = hook_settings()
    record = new_record(settings, callback_url="https://hooks.example.com/x")
    big = b'{"text":"' + b"x" * 300_000 + b'"}'
    record.status = "completed"
    record.response = ResponseEnvelope(status=200, body=big)
    payload = msgspec.json.decode(event_payload(record, "task.completed", datetime.now(UTC)))
    assert payload["response_omitted"] is True
    assert "body" not in payload["response"]
    assert payload["response"]["status"] == 200
    small = new_record(settings, callback_url="https://hooks.example.com/x")
    small.response = ResponseEnvelope(status=200, body=b'{"a":1}')
    decoded = msgspec.json.decode(event_payload(small, "task.completed", datetime.now(UTC)))
    assert "response_omitted" not in decoded
    assert decoded["response"]["body"] == {"a": 1}
    assert list(decoded)[:2] == ["type", "timestamp"]


def test_retry_after_as_seconds_or_date() -> None:
    now = datetime(2026, 7, 14, 9, 30, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Tue, 14 Jul 2026 09:35:00 GMT", now) == 300.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
