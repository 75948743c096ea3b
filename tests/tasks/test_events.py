"""Event logs: replay from a sequence number, follow live, window expiry, memory bound."""

from __future__ import annotations

import asyncio

import pytest

from runapi.errors import NotFound
from runapi.tasks.events import TaskEvents


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def collect(events: TaskEvents, task_id: str, after: int = 0) -> list[tuple[int, bytes]]:
    return [item async for item in events.follow(task_id, after)]


async def test_replay_then_follow_live_until_the_end() -> None:
    events = TaskEvents()
    events.open("task_1")
    for i in range(1, 4):
        assert events.append("task_1", b"data: %d\n\n" % i) == i
    follower = asyncio.create_task(collect(events, "task_1", after=1))
    await asyncio.sleep(0)
    assert events.append("task_1", b"data: 4\n\n") == 4
    events.finish("task_1")
    got = await asyncio.wait_for(follower, 5)
    assert [seq for seq, _ in got] == [2, 3, 4]
    assert got[-1][1] == b"data: 4\n\n"
    assert events.append("task_1", b"late") == 0  # an ended log takes nothing more
    assert await collect(events, "task_1", 3) == [(4, b"data: 4\n\n")]
    assert await collect(events, "task_1", 10) == []


async def test_window_then_unknown() -> None:
    clock = Clock()
    events = TaskEvents(window_seconds=600, clock=clock)
    events.open("task_1")
    assert events.state("task_1") == "live"
    events.append("task_1", b"data: x\n\n")
    events.finish("task_1")
    clock.now += 599
    assert events.state("task_1") == "ended"
    clock.now += 2
    assert events.state("task_1") == "unknown"
    with pytest.raises(NotFound):
        await collect(events, "task_1")
    assert events.state("never") == "unknown"


async def test_memory_bound_evicts_ended_logs_first() -> None:
    events = TaskEvents(max_bytes=100)
    events.open("old")
    events.append("old", b"x" * 60)
    events.finish("old")
    events.open("live")
    events.append("live", b"y" * 60)
    assert events.state("old") == "unknown"
    assert events.state("live") == "live"
    events.append("live", b"y" * 60)  # over the bound, but a running task keeps its frames
    assert len(await asyncio.wait_for(_first_two(events), 5)) == 2


async def _first_two(events: TaskEvents) -> list[int]:
    out = []
    async for seq, _ in events.follow("live"):
        out.append(seq)
        if len(out) == 2:
            break
    return out


async def test_prune_drops_expired_logs() -> None:
    clock = Clock()
    events = TaskEvents(window_seconds=10, clock=clock)
    for name in ("a", "b"):
        events.open(name)
        events.finish(name)
    clock.now += 11
    assert events.prune() == 2
    assert events.state("a") == "unknown"
    assert events.state("b") == "unknown"


async def test_quiet_spells_yield_keepalives() -> None:
    events = TaskEvents()
    events.open("task_1")
    got: list[int] = []

    async def follow() -> None:
        async for seq, _ in events.follow("task_1", keepalive_seconds=0.01):
            got.append(seq)
            if seq == 0 and 1 not in got:
                events.append("task_1", b"data: x\n\n")
                events.finish("task_1")

    await asyncio.wait_for(follow(), 5)
    assert got[0] == 0
    assert got[-1] == 1


async def test_a_log_never_finished_is_ended_after_the_deadline() -> None:
    clock = Clock()
    events = TaskEvents(idle_seconds=1200, clock=clock)
    events.open("forgotten")
    events.append("forgotten", b"data: x\n\n")
    clock.now += 1201
    assert events.end_idle() == 1
    assert events.state("forgotten") == "ended"
    assert [seq for seq, _ in await collect(events, "forgotten")] == [1]


async def test_several_followers_miss_nothing_whatever_the_interleaving() -> None:
    events = TaskEvents()
    events.open("task_1")
    followers = [asyncio.create_task(collect(events, "task_1")) for _ in range(3)]
    for i in range(1, 41):
        events.append("task_1", b"data: %d\n\n" % i)
        for _ in range(i % 3):  # sometimes the followers run between appends, sometimes not
            await asyncio.sleep(0)
    events.finish("task_1")
    for got in await asyncio.wait_for(asyncio.gather(*followers), 5):
        assert [seq for seq, _ in got] == list(range(1, 41))
