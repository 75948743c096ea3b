"""`Tasks` as the app wires it: cancel across processes, restart recovery, shutdown drain."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from runapi.store.database import Database
from runapi.store.schema import instances
from runapi.tasks.facade import Tasks
from runapi.tasks.records import TaskOutcome, TaskRecord
from runapi.tasks.runner import CANCEL_BY_CALLER, CANCEL_SHUTDOWN, cancel_reason

from .conftest import make_settings
from .helpers import new_record


def generation(
    tasks: Tasks, record: TaskRecord, reasons: list[str | None], started: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """What the pipeline's async run does, reduced: slot, processing, wait, record the cancel."""

    async def run() -> None:
        try:
            async with tasks.runner.slot():
                await tasks.store.mark_processing(record.id)
                started.set()
                await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            reasons.append(cancel_reason(exc))
            await tasks.store.finish(record.id, TaskOutcome(status="canceled"))
            raise

    return run()


async def test_cancel_reaches_a_task_running_in_another_process(db: Database) -> None:
    settings = make_settings(heartbeat_seconds=0.05)
    owner, other = Tasks(db, settings), Tasks(db, settings)
    await owner.start()
    await other.start()
    record = new_record(settings, mode="async")
    await owner.store.create(record, durable=True)
    reasons: list[str | None] = []
    started = asyncio.Event()
    owner.runner.submit(record.id, generation(owner, record, reasons, started))
    await started.wait()

    result = await other.cancel(record.surface_id, record.account_id)
    assert result.status == "canceled"
    assert reasons == [CANCEL_BY_CALLER]
    await owner.close()
    await other.close()


async def test_restart_fails_orphans_and_hands_them_over(db: Database) -> None:
    settings = make_settings()
    crashed = Tasks(db, settings)
    await crashed.start()
    record = new_record(settings, mode="async")
    await crashed.store.create(record, durable=True)
    await crashed.store.mark_processing(record.id)
    await crashed.store.flush()
    # A crash: loops stop, nothing is finished, the instance row stays behind.
    for loop_task in (crashed._maintenance, crashed.store._writer):
        assert loop_task is not None
        loop_task.cancel()
    await crashed.dispatcher.close()
    async with db.begin() as conn:
        await conn.execute(
            update(instances)
            .where(instances.c.id == crashed.store.worker_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
        )

    handed: list[TaskRecord] = []

    async def void_holds(records: list[TaskRecord]) -> None:
        handed.extend(records)

    restarted = Tasks(db, settings)
    await restarted.start(on_orphans=void_holds)
    assert [r.id for r in handed] == [record.id]
    got = await restarted.store.get(record.id, record.account_id)
    assert got.status == "failed"
    assert got.error_code == "gateway_restarted"
    await restarted.close()


async def test_close_drains_then_cancels_for_shutdown(db: Database) -> None:
    settings = make_settings()
    tasks = Tasks(db, settings)
    await tasks.start()
    record = new_record(settings, mode="async")
    await tasks.store.create(record)
    reasons: list[str | None] = []
    started = asyncio.Event()
    tasks.runner.submit(record.id, generation(tasks, record, reasons, started))
    await started.wait()
    await tasks.close(grace_seconds=0.05)
    assert reasons == [CANCEL_SHUTDOWN]

    fresh = Tasks(db, settings)  # the canceled state was flushed before close returned
    await fresh.start()
    assert (await fresh.store.get(record.id, record.account_id)).status == "canceled"
    await fresh.close()
