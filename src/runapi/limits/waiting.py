"""Async tasks over their key's concurrency cap wait in `pending` instead of getting 429
(runapi-contract §6.2). Their places, at most `WAIT_FACTOR` times the cap per key and model class,
are the limiter's (`Limiter.join_queue`, shared by every process on Redis); this module tells a
waiter when to look again: as soon as this process releases a slot of its key, and otherwise
every `poll_seconds`, since slots released by other processes send no signal here.
"""

from __future__ import annotations

import asyncio
import contextlib

WAIT_FACTOR = 10


class SlotWaiters:
    def __init__(self, *, poll_seconds: float = 0.25) -> None:
        self.poll_seconds = poll_seconds
        self._waiting: dict[str, int] = {}  # how many of this process's tasks wait, per key
        self._freed: dict[str, asyncio.Event] = {}

    def join(self, key_id: str) -> None:
        self._waiting[key_id] = self._waiting.get(key_id, 0) + 1

    def leave(self, key_id: str) -> None:
        left = self._waiting.get(key_id, 0) - 1
        if left > 0:
            self._waiting[key_id] = left
        else:
            self._waiting.pop(key_id, None)
            self._freed.pop(key_id, None)

    def waiting(self, key_id: str) -> int:
        return self._waiting.get(key_id, 0)

    def released(self, key_id: str) -> None:
        """A slot of this key was given back here: wake its waiters to try again."""
        freed = self._freed.pop(key_id, None)
        if freed is not None:
            freed.set()

    async def pause(self, key_id: str, retry_after: float) -> None:
        """Until a slot of the key is released here, or the refusal's `retry_after` (at most
        `poll_seconds`) has passed."""
        freed = self._freed.get(key_id)
        if freed is None:
            freed = self._freed[key_id] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(freed.wait(), min(max(retry_after, 0.01), self.poll_seconds))


__all__ = ["WAIT_FACTOR", "SlotWaiters"]
