"""The queue of async tasks waiting for a concurrency slot of their key."""

from __future__ import annotations

import asyncio

from runapi.limits.waiting import SlotWaiters


def test_each_key_queues_up_to_ten_times_its_cap() -> None:
    waiters = SlotWaiters()
    assert all(waiters.join("key_a", 2) for _ in range(20))
    assert not waiters.join("key_a", 2)
    assert waiters.join("key_b", 2)  # another key has its own queue
    assert not SlotWaiters().join("key_c", 0)  # no slots at all: nothing waits
    waiters.leave("key_a")
    assert waiters.join("key_a", 2)
    for _ in range(20):
        waiters.leave("key_a")
    assert waiters.waiting("key_a") == 0


async def test_a_released_slot_wakes_the_waiters_of_its_key() -> None:
    waiters = SlotWaiters(poll_seconds=30)
    assert waiters.join("key_a", 1)
    pausing = asyncio.ensure_future(waiters.pause("key_a", retry_after=30))
    await asyncio.sleep(0)
    waiters.released("key_b")  # another key's slot: still waiting
    await asyncio.sleep(0.05)
    assert not pausing.done()
    waiters.released("key_a")
    await asyncio.wait_for(pausing, 5)  # woken, long before its 30 s


async def test_without_a_release_here_a_waiter_looks_again_after_the_poll() -> None:
    waiters = SlotWaiters(poll_seconds=0.05)
    assert waiters.join("key_a", 1)
    # A refusal's retry_after of minutes is capped by the poll: other processes free slots silently.
    await asyncio.wait_for(waiters.pause("key_a", retry_after=600), 5)
