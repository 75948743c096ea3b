"""Async tasks over their key's concurrency cap wait in `pending` instead of getting 429
(runapi-contract §6.2): up to `factor` times the cap per key, after which the caller gets the 429.

The count is per gateway process (with several workers, each queues up to the bound). A waiter is
woken when this process releases a slot of its key, and otherwise looks again every
`poll_seconds`, since slots released by other processes (Redis) send no signal here.
"""

from __future__ import annotations

import asyncio
import contextlib

WAIT_FACTOR = 10


class SlotWaiters:
    def __init__(self, *, factor: int = WAIT_FACTOR, poll_seconds: float = 0.25) -> None:
        self.factor = factor
        self.poll_seconds = poll_seconds
        self._waiting: dict[str, int] = {}
        self._freed: dict[str, asyncio.Event] = {}

    def join(self, key_id: str, cap: int) -> bool:
        """Take a place in the key's queue; False when `factor` * `cap` tasks already wait."""
        waiting = self._waiting.get(key_id, 0)
        if waiting >= self.factor * cap:
            return False
        self._waiting[key_id] = waiting + 1
        return True

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
