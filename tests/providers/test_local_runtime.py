"""The worker pool that serves the local model, with plain Python work in place of llama.cpp.

The pool is what keeps a model instance to one thread and bounds the queue; these tests pin
that behaviour quickly and without the model (the real-model tests repeat the key cases).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from runapi.canonical import Event, TextDelta
from runapi.errors import Overloaded, UpstreamError, UpstreamUnavailable
from runapi.providers.local.runtime import Job, Work, WorkerPool


class FakeInstance:
    """Stands in for a model: records which threads touched it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.threads: set[int] = set()
        self.closed = False


Pool = WorkerPool[FakeInstance]


def make_pool(instances: int, queue_size: int, loaded: list[FakeInstance]) -> Pool:
    def load(index: int) -> FakeInstance:
        instance = FakeInstance(index)
        loaded.append(instance)
        return instance

    def unload(instance: FakeInstance) -> None:
        instance.closed = True

    return WorkerPool(instances=instances, queue_size=queue_size, load=load, unload=unload)


class Words:
    """Work yielding `count` deltas, each after `gate` opens; `started` is set once running."""

    def __init__(self, count: int, gate: threading.Event | None = None) -> None:
        self.count = count
        self.gate = gate
        self.started = threading.Event()

    def __call__(self, instance: FakeInstance, cancelled: threading.Event) -> Iterator[Event]:
        self.started.set()
        for i in range(self.count):
            instance.threads.add(threading.get_ident())
            while self.gate is not None and not self.gate.wait(0.01):
                if cancelled.is_set():
                    return
            if cancelled.is_set():
                return
            yield TextDelta(f"{instance.index}:{i} ")

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 5), "the job never started"


async def collect(job: Job[FakeInstance]) -> list[str]:
    out: list[str] = []
    while (event := await job.next_event()) is not None:
        assert isinstance(event, TextDelta)
        out.append(event.text)
    return out


@pytest.fixture
async def pool_and_instances() -> AsyncIterator[tuple[Pool, list[FakeInstance]]]:
    loaded: list[FakeInstance] = []
    pool = make_pool(2, 2, loaded)
    await pool.start()
    yield pool, loaded
    await pool.close()
    assert all(instance.closed for instance in loaded)


async def test_each_instance_is_used_by_exactly_one_thread(
    pool_and_instances: tuple[Pool, list[FakeInstance]],
) -> None:
    pool, loaded = pool_and_instances
    for _ in range(3):
        work: list[Work[FakeInstance]] = [Words(20) for _ in range(4)]
        results = await asyncio.gather(*(collect(pool.submit(w)) for w in work))
        assert all(len(r) == 20 for r in results)
        # A job's deltas all come from one instance: no interleaving between jobs.
        assert all(len({text.split(":")[0] for text in r}) == 1 for r in results)
    assert len(loaded) == 2
    # Never two threads on one instance, never one thread on two. (Both instances need not get
    # work: these jobs are so short that one worker can take all twelve before the other wakes.)
    assert all(len(instance.threads) <= 1 for instance in loaded)
    assert loaded[0].threads.isdisjoint(loaded[1].threads)
    assert loaded[0].threads | loaded[1].threads, "some thread did the work"


async def test_a_burst_fills_instances_and_queue_then_is_refused_at_once(
    pool_and_instances: tuple[Pool, list[FakeInstance]],
) -> None:
    pool, _ = pool_and_instances
    gate = threading.Event()
    admitted = [pool.submit(Words(1, gate)) for _ in range(4)]  # 2 instances + 2 queue slots
    with pytest.raises(Overloaded) as err:
        pool.submit(Words(1, gate))
    assert err.value.status == 503
    assert err.value.retry_after is not None
    pool.withdraw(admitted[3])  # a waiting client went away: its slot is free again
    extra = pool.submit(Words(1, gate))
    gate.set()
    results = await asyncio.gather(*(collect(j) for j in [*admitted[:3], extra]))
    assert all(len(r) == 1 for r in results)


async def test_withdrawing_a_running_job_frees_its_instance(
    pool_and_instances: tuple[Pool, list[FakeInstance]],
) -> None:
    pool, _ = pool_and_instances
    work = Words(1000, threading.Event())
    job = pool.submit(work)
    await work.wait_started()
    assert pool.busy == 1
    pool.withdraw(job)
    async with asyncio.timeout(1):
        await pool.wait_idle()
    assert pool.busy == 0
    assert pool.waiting == 0


async def test_errors_in_work_reach_the_consumer_as_upstream_errors(
    pool_and_instances: tuple[Pool, list[FakeInstance]],
) -> None:
    pool, _ = pool_and_instances

    def broken(instance: FakeInstance, cancelled: threading.Event) -> Iterator[Event]:
        yield TextDelta("partial ")
        raise RuntimeError("decode failed")

    job = pool.submit(broken)
    assert await job.next_event() == TextDelta("partial ")
    with pytest.raises(UpstreamError, match="decode failed"):
        await job.next_event()


async def test_close_refuses_the_jobs_still_waiting() -> None:
    pool = make_pool(1, 4, [])
    await pool.start()
    work = Words(1, threading.Event())
    running = pool.submit(work)
    await work.wait_started()
    waiting = pool.submit(Words(1))
    await pool.close()
    with pytest.raises(UpstreamUnavailable):
        await waiting.next_event()
    assert await collect(running) == []
    with pytest.raises(Overloaded):
        pool.submit(Words(1))


async def test_a_failing_load_fails_start() -> None:
    def load(index: int) -> FakeInstance:
        raise OSError("no such model")

    pool: Pool = WorkerPool(instances=2, queue_size=1, load=load, unload=lambda _: None)
    with pytest.raises(OSError, match="no such model"):
        await pool.start()
