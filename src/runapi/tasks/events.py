"""Per-task event logs for `GET /v1/tasks/{id}/events`: replay by sequence number, then follow live.

In-process only: a task's frames live in the process that runs it, for the task's life and
`events_window_seconds` after its end (runapi-contract §3.6). Elsewhere, or after eviction, the
route synthesizes a replay from the stored body through `ReplayFrames`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Literal

from runapi.errors import NotFound

if TYPE_CHECKING:
    from runapi.tasks.records import TaskRecord

# Renders a finished task's stored body as the SSE frames of its surface (provided by the app,
# which knows the surfaces). Each frame is one complete SSE event without an `id:` line.
ReplayFrames = Callable[["TaskRecord"], Sequence[bytes]]

LogState = Literal["live", "ended", "unknown"]

_PRUNE_EVERY = 1.0  # seconds between opportunistic prunes on `open`


class _Log:
    __slots__ = ("changed", "ended_at", "frames", "last_at", "size")

    def __init__(self, now: float) -> None:
        self.frames: list[bytes] = []
        self.size = 0
        self.ended_at: float | None = None
        self.last_at = now
        # Set and dropped on every change: followers wait on the event they saw, so an append
        # between their read and their wait is never missed. Made by the first follower that
        # waits (most logs have none), not per appended frame.
        self.changed: asyncio.Event | None = None

    def touch(self) -> None:
        event, self.changed = self.changed, None
        if event is not None:
            event.set()

    def waiter(self) -> asyncio.Event:
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed


class TaskEvents:
    """Append-only SSE frames per task, numbered from 1, with waiters for live followers.

    Memory is bounded by `max_bytes`: past it, the oldest ended logs are evicted first (their
    replay then comes from the stored body). Logs of running tasks are never evicted.
    """

    def __init__(
        self,
        window_seconds: float = 600.0,
        max_bytes: int = 256 * 1024 * 1024,
        idle_seconds: float = 1200.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.max_bytes = max_bytes
        # A log nobody appended to for this long (the task deadline) is ended by `prune`, so a
        # run that never called `finish` cannot hold followers forever.
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # end order, oldest first
        self._bytes = 0
        self._last_prune = clock()

    def open(self, task_id: str) -> None:
        """Start a log for a task (stream and async modes). Idempotent."""
        now = self._clock()
        if task_id not in self._logs:
            self._logs[task_id] = _Log(now)
        if now - self._last_prune >= _PRUNE_EVERY:
            self.prune()

    def append(self, task_id: str, frame: bytes) -> int:
        """Add one complete SSE event (`event: ...\\ndata: ...\\n\\n`, no `id:` line); returns its
        sequence number. Frames for a task without an open log are ignored (returns 0)."""
        log = self._logs.get(task_id)
        if log is None or log.ended_at is not None:
            return 0
        log.frames.append(frame)
        log.last_at = self._clock()
        log.size += len(frame)
        self._bytes += len(frame)
        log.touch()
        if self._bytes > self.max_bytes:
            self._evict()
        return len(log.frames)

    def finish(self, task_id: str) -> None:
        """Mark the log complete: followers drain it and stop; it is kept for the window."""
        log = self._logs.get(task_id)
        if log is None or log.ended_at is not None:
            return
        log.ended_at = self._clock()
        self._ended[task_id] = None
        log.touch()

    def state(self, task_id: str) -> LogState:
        """`live` (running here), `ended` (kept for replay) or `unknown` (never here, or expired)."""
        log = self._logs.get(task_id)
        if log is None:
            return "unknown"
        if log.ended_at is None:
            return "live"
        if self._clock() - log.ended_at > self.window_seconds:
            self._drop(task_id)
            return "unknown"
        return "ended"

    def last_sequence(self, task_id: str) -> int:
        log = self._logs.get(task_id)
        return len(log.frames) if log is not None else 0

    async def follow(
        self, task_id: str, starting_after: int = 0, keepalive_seconds: float | None = None
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Frames after `starting_after`, then live ones until the log ends. With
        `keepalive_seconds`, a quiet spell that long yields `(0, b"")` so the caller can send an SSE
        comment. Raises `NotFound` when the log is unknown here (check `state` first)."""
        log = self._logs.get(task_id)
        if log is None:
            raise NotFound(f"No events for task {task_id} in this process.")
        position = max(0, starting_after)
        while True:
            waiter = log.waiter()
            while position < len(log.frames):
                position += 1
                yield position, log.frames[position - 1]
            if log.ended_at is not None:
                return
            try:
                await asyncio.wait_for(waiter.wait(), keepalive_seconds)
            except TimeoutError:
                yield 0, b""

    def end_idle(self) -> int:
        """End live logs nobody appended to for `idle_seconds`; returns how many. A full scan, so
        it runs with the periodic maintenance, not per request."""
        now = self._clock()
        idle = [
            task_id
            for task_id, log in self._logs.items()
            if log.ended_at is None and now - log.last_at > self.idle_seconds
        ]
        for task_id in idle:
            self.finish(task_id)
        return len(idle)

    def prune(self) -> int:
        """Drop ended logs whose window has passed (oldest first, so this stops at the first one
        still kept); returns how many."""
        now = self._clock()
        self._last_prune = now
        dropped = 0
        while self._ended:
            task_id = next(iter(self._ended))
            log = self._logs.get(task_id)
            if log is not None and log.ended_at is not None and now - log.ended_at <= self.window_seconds:
                break
            self._drop(task_id)
            dropped += 1
        return dropped

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._ended:
            self._drop(next(iter(self._ended)))

    def _drop(self, task_id: str) -> None:
        self._ended.pop(task_id, None)
        log = self._logs.pop(task_id, None)
        if log is not None:
            self._bytes -= log.size
