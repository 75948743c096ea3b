"""The queue of async tasks waiting for a concurrency slot of their key."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from runapi.limits import Limiter
from runapi.limits.buckets import SlotRef
from runapi.limits.waiting import SlotWaiters
from tests.limits.conftest import REDIS_URL, FakeClock, delete_prefix, redis_backend, unique_prefix

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="RUNAPI_TEST_REDIS_URL is not set")


async def queue(
    limiter: Limiter, bound: int, key: str = "key_a", model_class: str = "standard"
) -> SlotRef | None:
    return await limiter.join_queue(key_id=key, account_id=1, model_class=model_class, bound=bound)


async def test_each_key_and_model_class_queues_up_to_its_bound(limiter: Limiter) -> None:
    places = [await queue(limiter, 20) for _ in range(20)]
    assert all(p is not None for p in places)
    assert len({p.slot_id for p in places if p is not None}) == 20
    assert await queue(limiter, 20) is None  # the 21st keeps its 429
    assert await queue(limiter, 20, key="key_b") is not None  # another key has its own queue
    assert await queue(limiter, 20, model_class="fast") is not None  # and another model class
    assert await queue(limiter, 0, key="key_c") is None  # no slots at all: nothing waits
    first = places[0]
    assert first is not None
    await limiter.leave_queue(first)
    await limiter.leave_queue(first)  # twice is harmless
    again = await queue(limiter, 20)
    assert again is not None
    assert await queue(limiter, 20) is None


@needs_redis
@pytest.mark.redis
async def test_the_bound_holds_across_processes_and_a_dead_ones_places_expire(clock: FakeClock) -> None:
    prefix = unique_prefix()
    lease = 30.0
    one = Limiter(redis_backend(clock, prefix, lease_seconds=lease), clock=clock)
    two = Limiter(redis_backend(clock, prefix, lease_seconds=lease), clock=clock)
    try:
        taken = [await queue(one, 10) for _ in range(6)] + [await queue(two, 10) for _ in range(4)]
        assert all(p is not None for p in taken)
        assert await queue(one, 10) is None  # 10 wait in all, not 10 per process
        assert await queue(two, 10) is None
        left = taken[-1]
        assert left is not None
        await two.leave_queue(left)
        assert await queue(one, 10) is not None
        # The first process dies with 7 places taken: they stop counting when their leases end.
        await one.aclose()
        assert await queue(two, 10) is None
        clock.advance(lease / 2)
        # The live process's keeper refreshes its own 3 places (called here: it runs on real time).
        await two.backend.refresh_queue_leases([p for p in taken[6:9] if p is not None])
        clock.advance(lease / 2 + 0.001)
        fresh = [await queue(two, 10) for _ in range(7)]
        assert all(p is not None for p in fresh)
        assert await queue(two, 10) is None
    finally:
        await one.aclose()
        await two.aclose()
        assert REDIS_URL is not None
        await delete_prefix(REDIS_URL, prefix)


@needs_redis
@pytest.mark.redis
async def test_the_lease_keeper_keeps_a_waiting_tasks_place(clock: FakeClock) -> None:
    assert REDIS_URL is not None
    prefix = unique_prefix()
    lease = 0.15  # the keeper wakes every lease/3 real seconds; the lease runs on `clock`
    limiter = Limiter(redis_backend(clock, prefix, lease_seconds=lease), clock=clock)
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        place = await queue(limiter, 1)
        assert place is not None
        queue_key = f"{prefix}{{a1}}:k:key_a:standard:queue"
        clock.advance(0.1)
        wanted = (clock.now + lease) * 1000
        for _ in range(200):  # bounded wait for the keeper's next refresh
            score = await client.zscore(queue_key, place.slot_id)
            if score is not None and score >= wanted - 1:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the lease keeper never refreshed the place")
        clock.advance(0.1)  # past the first lease, within the refreshed one
        assert await queue(limiter, 1) is None
        await limiter.leave_queue(place)
        assert await client.zscore(queue_key, place.slot_id) is None
        assert await queue(limiter, 1) is not None
    finally:
        await client.aclose()
        await limiter.aclose()
        await delete_prefix(REDIS_URL, prefix)


def test_waiters_are_counted_per_key_and_forgotten_when_none_is_left() -> None:
    waiters = SlotWaiters()
    waiters.join("key_a")
    waiters.join("key_a")
    waiters.join("key_b")
    assert (waiters.waiting("key_a"), waiters.waiting("key_b")) == (2, 1)
    waiters.leave("key_a")
    waiters.leave("key_a")
    assert waiters.waiting("key_a") == 0


async def test_a_released_slot_wakes_the_waiters_of_its_key() -> None:
    waiters = SlotWaiters(poll_seconds=30)
    waiters.join("key_a")
    pausing = asyncio.ensure_future(waiters.pause("key_a", retry_after=30))
    await asyncio.sleep(0)
    waiters.released("key_b")  # another key's slot: still waiting
    await asyncio.sleep(0.05)
    assert not pausing.done()
    waiters.released("key_a")
    await asyncio.wait_for(pausing, 5)  # woken, long before its 30 s


async def test_without_a_release_here_a_waiter_looks_again_after_the_poll() -> None:
    waiters = SlotWaiters(poll_seconds=0.05)
    waiters.join("key_a")
    # A refusal's retry_after of minutes is capped by the poll: other processes free slots silently.
    await asyncio.wait_for(waiters.pause("key_a", retry_after=600), 5)
