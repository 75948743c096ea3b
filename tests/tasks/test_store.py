"""The task store on a real database: write-behind without loss, reads, paging, retention, recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import func, insert, select, update

from runapi.errors import NotFound
from runapi.store.database import Database
from runapi.store.schema import instances, response_inputs, tasks, webhook_outbox
from runapi.tasks.records import TaskOutcome
from runapi.tasks.store import TaskStore

from .conftest import make_settings
from .helpers import completed, new_record


async def count_tasks(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(tasks))).scalar_one())


async def test_write_behind_never_drops_and_reads_its_writes(db: Database) -> None:
    # A tiny buffer forces backpressure: callers wait, nothing is discarded.
    settings = make_settings(write_buffer_limit=64)
    store = TaskStore(db, settings)
    await store.start()
    records = [new_record(settings, account_id=7) for _ in range(3000)]

    async def one(i: int) -> None:
        await store.create(records[i])
        seen = await store.get(records[i].id, 7)  # visible at once, flushed or not
        assert seen.status == "pending"
        if i % 2 == 0:
            await store.mark_processing(records[i].id)
            await store.finish(records[i].id, completed(cost=i))

    await asyncio.gather(*(one(i) for i in range(len(records))))
    await store.flush()
    assert await count_tasks(db) == 3000
    async with db.connect() as conn:
        done = (
            await conn.execute(select(tasks.c.id, tasks.c.cost_micros).where(tasks.c.status == "completed"))
        ).all()
    assert len(done) == 1500
    assert {r.cost_micros for r in done} == set(range(0, 3000, 2))
    await store.close()


async def stored_statuses(db: Database, *task_ids: str) -> dict[str, str]:
    """What the database itself holds (not the store's buffer)."""
    async with db.connect() as conn:
        rows = (await conn.execute(select(tasks.c.id, tasks.c.status).where(tasks.c.id.in_(task_ids)))).all()
    return {r.id: r.status for r in rows}


async def settle_writer(store: TaskStore) -> None:
    """Let the writer run a few rounds of its own (no flush(), which would force the held rows)."""
    for _ in range(10):
        await asyncio.sleep(0.01)


async def test_a_sync_task_that_ends_within_the_delay_is_written_once_whole(db: Database) -> None:
    store = TaskStore(db, make_settings(sync_write_delay_ms=60_000))
    await store.start()
    record = new_record(store.settings)
    await store.create(record, deferred=True)
    await store.mark_processing(record.id)
    await settle_writer(store)
    assert await stored_statuses(db, record.id) == {}  # held back: no insert, no update yet
    assert (await store.get(record.id, 1)).status == "processing"  # this process sees it
    await store.finish(record.id, completed())
    await settle_writer(store)
    assert await stored_statuses(db, record.id) == {record.id: "completed"}  # one write, no flush()
    await store.close()


async def test_a_sync_task_still_running_after_the_delay_is_written_as_processing(db: Database) -> None:
    store = TaskStore(db, make_settings(sync_write_delay_ms=50))
    await store.start()
    slow, other = new_record(store.settings), new_record(store.settings)
    await store.create(slow, deferred=True)
    await store.mark_processing(slow.id)
    await store.create(other, deferred=True)
    for _ in range(100):  # bounded: 2 s
        if await stored_statuses(db, slow.id):
            break
        await asyncio.sleep(0.02)
    assert (await stored_statuses(db, slow.id, other.id))[slow.id] == "processing"
    await store.finish(slow.id, completed())
    await store.flush()
    assert await stored_statuses(db, slow.id, other.id) == {slow.id: "completed", other.id: "pending"}
    await store.close()


async def test_flush_and_close_write_deferred_tasks_at_once(db: Database) -> None:
    store = TaskStore(db, make_settings(sync_write_delay_ms=60_000))
    await store.start()
    first, second = new_record(store.settings), new_record(store.settings)
    await store.create(first, deferred=True)
    await store.create(second, deferred=True)
    await store.flush()  # e.g. a listing: what was created before it is in the database
    assert await stored_statuses(db, first.id) == {first.id: "pending"}
    third = new_record(store.settings)
    await store.create(third, deferred=True)
    await store.close()  # shutdown loses nothing that is held back
    assert await stored_statuses(db, first.id, second.id, third.id) == {
        first.id: "pending",
        second.id: "pending",
        third.id: "pending",
    }


async def test_finished_task_round_trips_through_the_database(db: Database) -> None:
    settings = make_settings()
    store = TaskStore(db, settings)
    await store.start()
    record = new_record(settings, client_request_id="order-123", mode="async")
    await store.create(record, durable=True)
    await store.mark_processing(record.id)
    await store.finish(record.id, completed())
    await store.close()

    fresh = TaskStore(db, settings)  # another process: nothing in memory
    await fresh.start()
    got = await fresh.get(record.surface_id, 1)
    assert got.id == record.id
    assert got.status == "completed"
    assert got.client_request_id == "order-123"
    assert got.usage is not None
    assert got.usage.cached_input_tokens == 800
    assert got.response is not None
    assert got.response.headers == {"x-request-id": "req_1"}
    api = msgspec.json.decode(msgspec.json.encode(got.to_api()))
    assert api["object"] == "task"
    assert api["cost"] == {
        "amount": "0.000588",
        "amount_micros": 588,
        "billed": True,
        "free_call": False,
        "zero_charge_reason": None,
        "currency": "USD",
    }
    assert api["response"]["body"] == {"id": "chatcmpl-x", "object": "chat.completion"}
    assert api["usage"]["usage_source"] == "upstream"
    assert api["created_at"].endswith("Z")
    assert api["expires_at"] is not None
    await fresh.close()


async def test_other_accounts_get_not_found(store: TaskStore) -> None:
    record = new_record(store.settings, account_id=1)
    await store.create(record)
    with pytest.raises(NotFound):
        await store.get(record.id, 2)
    await store.flush()
    with pytest.raises(NotFound):
        await store.get(record.id, 2)
    with pytest.raises(NotFound):
        await store.get("task_01ARZ3NDEKTSV4RRFFQ69G5FAV", 1)


async def test_cursor_paging_newest_first_without_bodies(store: TaskStore) -> None:
    ids = []
    for i in range(25):
        record = new_record(store.settings, account_id=3, model="MiniMax-M2.7" if i % 5 else "local")
        await store.create(record)
        await store.finish(record.id, completed())
        ids.append(record.id)
    await store.create(new_record(store.settings, account_id=4))  # another account's task

    first = await store.list_tasks(3, limit=10)
    assert [r.id for r in first.records] == ids[::-1][:10]
    assert first.has_more
    assert all(r.response is not None and r.response.body == b"" for r in first.records)
    second = await store.list_tasks(3, limit=10, after=first.records[-1].id)
    third = await store.list_tasks(3, limit=10, after=second.records[-1].id)
    assert [r.id for r in second.records + third.records] == ids[::-1][10:]
    assert not third.has_more
    local = await store.list_tasks(3, model="local")
    assert len(local.records) == 5
    assert (await store.list_tasks(3, status="pending")).records == []


async def test_finish_is_idempotent_and_never_reopens(store: TaskStore) -> None:
    record = new_record(store.settings)
    await store.create(record)
    await store.finish(record.id, TaskOutcome(status="canceled", zero_charge_reason="canceled_before_start"))
    again = await store.finish(record.id, completed())
    assert again.status == "canceled"
    assert (await store.mark_processing(record.id)).status == "canceled"


async def test_retention_removes_outputs_and_inputs(db: Database, store: TaskStore) -> None:
    record = new_record(store.settings)
    await store.create(record)
    await store.finish(record.id, completed())
    await store.flush()
    async with db.begin() as conn:
        await conn.execute(
            insert(response_inputs).values(
                task_id=record.id, items="[]", expires_at=datetime.now(UTC) + timedelta(days=7)
            )
        )
    assert await store.expire(datetime.now(UTC) + timedelta(days=6)) == 0
    assert await store.expire(datetime.now(UTC) + timedelta(days=8)) == 1
    got = await store.get(record.id, 1)
    assert got.data_removed
    assert got.response is None
    assert got.cost_micros == 588
    assert got.usage is not None
    api = got.to_api()
    assert api.response is None
    assert api.data_removed
    async with db.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(response_inputs))).scalar_one()
    assert left == 0


async def test_orphans_of_a_dead_process_fail_once_with_a_webhook(db: Database) -> None:
    settings = make_settings(orphan_after_seconds=5.0)
    dead = TaskStore(db, settings)
    await dead.start()
    running = new_record(settings, callback_url="https://hooks.example.com/x", mode="async")
    queued = new_record(settings, mode="async")
    finished = new_record(settings)
    for record in (running, queued, finished):
        await dead.create(record, durable=True)
    await dead.mark_processing(running.id)
    await dead.finish(finished.id, completed())
    await dead.flush()
    dead._writer.cancel()  # type: ignore[union-attr]  # crash: no close, the heartbeat stays

    a, b = TaskStore(db, settings), TaskStore(db, settings)
    await a.start()
    await b.start()
    assert await a.recover_orphans() == []  # heartbeat fresh, and the pid is ours: alive
    async with db.begin() as conn:
        await conn.execute(
            update(instances)
            .where(instances.c.id == dead.worker_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=60))
        )
    got_a, got_b = await asyncio.gather(a.recover_orphans(), b.recover_orphans())
    recovered = got_a + got_b
    assert sorted(r.id for r in recovered) == sorted([running.id, queued.id])
    for r in recovered:
        assert r.status == "failed"
        assert r.error_code == "gateway_restarted"
        assert r.zero_charge_reason == "failed"
        assert r.cost_micros == 0
    assert (await a.get(finished.id, 1)).status == "completed"
    async with db.connect() as conn:
        events = (await conn.execute(select(webhook_outbox.c.task_id, webhook_outbox.c.event_type))).all()
    assert [(e.task_id, e.event_type) for e in events] == [(running.id, "task.failed")]
    await a.close()
    await b.close()


async def test_a_process_whose_pid_is_gone_is_dead_at_once(db: Database) -> None:
    settings = make_settings(orphan_after_seconds=3600.0)
    dead = TaskStore(db, settings)
    await dead.start()
    record = new_record(settings, mode="async")
    await dead.create(record, durable=True)
    dead._writer.cancel()  # type: ignore[union-attr]
    async with db.begin() as conn:  # a pid that cannot exist on Linux (pid_max ≤ 4194304)
        await conn.execute(update(instances).where(instances.c.id == dead.worker_id).values(pid=99_999_999))
    alive = TaskStore(db, settings)
    await alive.start()
    recovered = await alive.recover_orphans()
    if not alive._host_key:
        pytest.skip("no /proc: liveness is judged by heartbeats alone here")
    assert [r.id for r in recovered] == [record.id]
    await alive.close()


async def test_cancel_request_reaches_the_owner_through_its_heartbeat(db: Database) -> None:
    settings = make_settings()
    owner, other = TaskStore(db, settings), TaskStore(db, settings)
    await owner.start()
    await other.start()
    record = new_record(settings, mode="async")
    await owner.create(record, durable=True)
    assert await owner.heartbeat() == []
    await other.request_cancel(record.id)
    assert await owner.heartbeat() == [record.id]
    assert await other.heartbeat() == []
    await owner.close()
    await other.close()


async def test_wait_terminal_sees_local_and_remote_ends(db: Database) -> None:
    settings = make_settings()
    runner_side, waiter_side = TaskStore(db, settings), TaskStore(db, settings)
    await runner_side.start()
    await waiter_side.start()
    record = new_record(settings)
    await runner_side.create(record, durable=True)
    assert await runner_side.wait_terminal(record.id, 0.05) is None

    async def end_soon() -> None:
        await asyncio.sleep(0.1)
        await runner_side.finish(record.id, completed())

    ender = asyncio.create_task(end_soon())
    local, remote = await asyncio.gather(
        runner_side.wait_terminal(record.id, 10), waiter_side.wait_terminal(record.id, 10)
    )
    await ender
    assert local is not None
    assert local.status == "completed"
    assert remote is not None
    assert remote.status == "completed"
    await runner_side.close()
    await waiter_side.close()
