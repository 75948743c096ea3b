"""`Tasks`: the one object the app builds per process; it owns the store, events, runner and
webhook delivery, and runs their background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from runapi.settings import Settings
from runapi.store.database import Database
from runapi.tasks.events import ReplayFrames, TaskEvents
from runapi.tasks.idempotency import IdempotencyStore
from runapi.tasks.records import TaskRecord
from runapi.tasks.runner import CANCEL_BY_CALLER, AsyncRunner
from runapi.tasks.store import TaskStore
from runapi.tasks.webhooks.dispatcher import WebhookDispatcher
from runapi.tasks.webhooks.outbox import WebhookOutbox
from runapi.tasks.webhooks.secrets import WebhookSecrets

log = logging.getLogger(__name__)

# Called with tasks failed by restart recovery, so the pipeline voids their holds.
OrphanHandler = Callable[[list[TaskRecord]], Awaitable[None]]

_CANCEL_WAIT_SECONDS = 10.0  # how long a cancel call waits for the task to unwind


def stored_body_replay(record: TaskRecord) -> list[bytes]:
    """Fallback replay when the app gives none: the stored body as one SSE `data:` event."""
    if record.response is None or not record.response.body:
        return []
    return [b"data: " + record.response.body + b"\n\n"]


class Tasks:
    """Everything the pipeline and the routes use, as attributes:

    - `store` (TaskStore), `idempotency` (IdempotencyStore), `events` (TaskEvents),
      `runner` (AsyncRunner), `secrets` (WebhookSecrets), `outbox` (WebhookOutbox),
      `dispatcher` (WebhookDispatcher), `replay_frames` (ReplayFrames), `settings`.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        replay_frames: ReplayFrames | None = None,
        worker_id: str | None = None,
    ) -> None:
        t = settings.tasks
        self.settings = settings
        self.idempotency = IdempotencyStore(db)
        self.secrets = WebhookSecrets(db)
        self.outbox = WebhookOutbox(db)
        self.dispatcher = WebhookDispatcher(db, settings, self.secrets)
        self.store = TaskStore(
            db, settings, worker_id=worker_id, idempotency=self.idempotency, on_outbox=self.dispatcher.wake
        )
        self.events = TaskEvents(
            window_seconds=t.events_window_seconds,
            max_bytes=t.events_max_bytes,
            idle_seconds=t.deadline_seconds,
        )
        self.runner = AsyncRunner(max_running=t.max_async_running, max_queued=t.max_async_queued)
        self.replay_frames: ReplayFrames = replay_frames or stored_body_replay
        self._on_orphans: OrphanHandler | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._next_sweep = 0.0

    async def start(self, on_orphans: OrphanHandler | None = None) -> None:
        """Start the writer, the webhook dispatcher and the maintenance loop (heartbeat, orphan
        recovery, cancel requests, retention, key expiry). One round runs before this returns, so
        tasks orphaned by a restart are failed (and handed to `on_orphans`) at startup."""
        self._on_orphans = on_orphans
        await self.store.start()
        await self.dispatcher.start()
        await self.maintain()
        self._maintenance = asyncio.create_task(self._maintain_loop(), name="runapi-task-maintenance")

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Drain running async work (canceled after the grace period), flush the store, stop."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        await self.runner.drain(grace_seconds)
        await self.store.close()
        await self.dispatcher.close()

    async def cancel(self, task_or_surface_id: str, account_id: int) -> TaskRecord:
        """`POST /v1/tasks/{id}/cancel`: idempotent; a no-op on ended tasks. A task running here
        is canceled at once (the pipeline records `canceled` and bills per §8.5); one running in
        another process is asked through the database. Returns the task as it then stands."""
        record = await self.store.get(task_or_surface_id, account_id)
        if record.is_terminal:
            return record
        if not self.runner.cancel(record.id, CANCEL_BY_CALLER):
            await self.store.request_cancel(record.id)
        ended = await self.store.wait_terminal(record.id, _CANCEL_WAIT_SECONDS)
        return ended or await self.store.get(record.id, account_id)

    async def maintain(self) -> None:
        """One maintenance round (the loop runs it every `heartbeat_seconds`)."""
        for task_id in await self.store.heartbeat():
            self.runner.cancel(task_id, CANCEL_BY_CALLER)
        orphans = await self.store.recover_orphans()
        if orphans:
            log.warning("failed %d tasks orphaned by a stopped gateway process", len(orphans))
            if self._on_orphans is not None:
                await self._on_orphans(orphans)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.settings.tasks.maintenance_interval_seconds
            expired = await self.store.expire()
            purged = await self.idempotency.purge_expired()
            self.events.end_idle()
            self.events.prune()
            if expired or purged:
                log.info("retention: %d task outputs removed, %d idempotency keys expired", expired, purged)

    async def _maintain_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tasks.heartbeat_seconds)
            try:
                await self.maintain()
            except Exception:
                log.exception("task maintenance round failed")
