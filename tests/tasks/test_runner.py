"""The async runner: cancel by task id with a reason, bounds, drain at shutdown."""

from __future__ import annotations

import asyncio

import pytest

from runapi.errors import Overloaded
from runapi.tasks.runner import CANCEL_BY_CALLER, CANCEL_SHUTDOWN, AsyncRunner, cancel_reason


async def test_cancel_reaches_submitted_work_with_its_reason() -> None:
    runner = AsyncRunner(max_running=1, max_queued=1)
    seen: list[str | None] = []
    started = asyncio.Event()

    async def work() -> None:
        try:
            async with runner.slot():
                started.set()
                await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            seen.append(cancel_reason(exc))
            raise

    runner.submit("task_1", work())
    runner.submit("task_2", work())  # queued behind the slot
    await started.wait()
    with pytest.raises(Overloaded):
        runner.submit("task_3", work())
    assert runner.is_running("task_2")
    assert runner.cancel("task_2")
    assert runner.cancel("task_1")
    assert not runner.cancel("task_9")
    await runner.drain(5)
    assert seen == [CANCEL_BY_CALLER, CANCEL_BY_CALLER]
    assert runner.running_ids() == []


async def test_track_makes_a_request_handler_cancellable() -> None:
    runner = AsyncRunner()
    reasons: list[str | None] = []

    async def handler() -> None:
        with runner.track("task_1"):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError as exc:
                reasons.append(cancel_reason(exc))

    job = asyncio.create_task(handler())
    await asyncio.sleep(0)
    assert runner.cancel("task_1")
    await job
    assert reasons == [CANCEL_BY_CALLER]
    assert not runner.is_running("task_1")


async def test_drain_waits_then_cancels_for_shutdown() -> None:
    runner = AsyncRunner()
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def slow() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            finished.append(str(cancel_reason(exc)))
            raise

    runner.submit("a", quick())
    runner.submit("b", slow())
    await runner.drain(0.2)
    assert sorted(finished) == sorted(["quick", CANCEL_SHUTDOWN])
    with pytest.raises(Overloaded):
        runner.submit("c", quick())
