"""Runs async-mode generations as asyncio tasks, cancellable by task id, drained at shutdown.

Sync and stream requests register their handler task with `track`, so `POST /v1/tasks/{id}/cancel`
reaches every task running in this process. The submitted coroutine always starts (so its own
cancellation handling runs even when it is canceled while queued); it waits for capacity inside
`slot()`, after which it marks the task `processing`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from runapi.errors import Overloaded

log = logging.getLogger(__name__)

# The message of the CancelledError the pipeline sees, so it can tell why it was canceled.
CANCEL_BY_CALLER = "runapi:canceled_by_caller"
CANCEL_SHUTDOWN = "runapi:shutdown"


def cancel_reason(exc: asyncio.CancelledError) -> str | None:
    """`CANCEL_BY_CALLER`, `CANCEL_SHUTDOWN`, or None for any other cancellation (a disconnect)."""
    if exc.args and exc.args[0] in (CANCEL_BY_CALLER, CANCEL_SHUTDOWN):
        return str(exc.args[0])
    return None


class AsyncRunner:
    """Up to `max_running + max_queued` submitted generations at once, of which `max_running`
    hold a `slot()`; beyond that `submit` raises `Overloaded` (503)."""

    def __init__(self, max_running: int = 256, max_queued: int = 10_000) -> None:
        self.max_running = max_running
        self.max_total = max_running + max_queued
        self._slots = asyncio.Semaphore(max_running)
        self._submitted: dict[str, asyncio.Task[None]] = {}
        self._tracked: dict[str, asyncio.Task[Any]] = {}
        self._reasons: dict[str, str] = {}
        self._accepting = True

    def submit(self, task_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background. The coroutine owns the task's lifecycle (slot,
        mark_processing, finish, settle); it sees `asyncio.CancelledError` on cancel or shutdown,
        with `cancel_reason(exc)` telling which."""
        if not self._accepting:
            work.close()
            raise Overloaded("The gateway is shutting down; retry shortly.", retry_after=2)
        if len(self._submitted) >= self.max_total:
            work.close()
            raise Overloaded("Too many async tasks are queued; retry shortly.", retry_after=2)
        task = asyncio.create_task(self._run(task_id, work), name=f"runapi-task:{task_id}")
        self._submitted[task_id] = task

    async def _run(self, task_id: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            pass  # the pipeline recorded the outcome; nothing above us awaits this task
        except Exception:
            log.exception("async task %s raised", task_id)
        finally:
            self._submitted.pop(task_id, None)
            self._reasons.pop(task_id, None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Capacity for one running generation; the task is `pending` until it gets one."""
        async with self._slots:
            yield

    @contextmanager
    def track(self, task_id: str) -> Iterator[None]:
        """Register the current asyncio task (a sync or stream handler) as running `task_id`."""
        current = asyncio.current_task()
        if current is None:
            raise RuntimeError("AsyncRunner.track needs a running asyncio task")
        self._tracked[task_id] = current
        try:
            yield
        finally:
            if self._tracked.get(task_id) is current:
                del self._tracked[task_id]
            self._reasons.pop(task_id, None)

    def is_running(self, task_id: str) -> bool:
        return task_id in self._submitted or task_id in self._tracked

    def cancel(self, task_id: str, reason: str = CANCEL_BY_CALLER) -> bool:
        """Cancel a task running here; False when it is not in this process."""
        task = self._submitted.get(task_id) or self._tracked.get(task_id)
        if task is None or task.done():
            return False
        self._reasons[task_id] = reason
        task.cancel(reason)
        return True

    def requested_cancel(self, task_id: str) -> str | None:
        """Why `cancel` was called for this task, if it was (the pipeline may check this when a
        library swallowed the CancelledError message)."""
        return self._reasons.get(task_id)

    def running_ids(self) -> list[str]:
        return [*self._submitted, *self._tracked]

    async def drain(self, grace_seconds: float) -> None:
        """Refuse new work, wait up to `grace_seconds`, then cancel what is left (CANCEL_SHUTDOWN)
        and wait for it to unwind."""
        self._accepting = False
        pending = list(self._submitted.values())
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=grace_seconds)
        for task_id, task in list(self._submitted.items()):
            if task in still:
                self._reasons[task_id] = CANCEL_SHUTDOWN
                task.cancel(CANCEL_SHUTDOWN)
        if still:
            await asyncio.wait(still, timeout=max(grace_seconds, 5.0))
