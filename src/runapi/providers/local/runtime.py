"""Worker threads that each own one model instance, fed through one bounded queue.

A llama.cpp model object crashes the process when two threads use it at once, so each instance
lives in exactly one thread for its whole life. The event loop only enqueues jobs and reads
their events: inference never runs on the loop, and a full queue answers `Overloaded` at once
instead of letting requests pile up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final, Generic, TypeVar

from runapi.canonical import Event
from runapi.errors import Overloaded, RunapiError, UpstreamError, UpstreamUnavailable

log = logging.getLogger("runapi.local")

InstanceT = TypeVar("InstanceT")

# The work a job does on an instance: yields events, and returns soon after `cancelled` is set.
Work = Callable[[InstanceT, threading.Event], Iterator[Event]]


class _Done:
    """End-of-stream marker on a job's event queue."""


_DONE: Final = _Done()


class Job(Generic[InstanceT]):
    """One generation: runs in a worker thread, its events are read on the event loop."""

    __slots__ = ("_events", "_loop", "cancelled", "work")

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Work[InstanceT]) -> None:
        self.work = work
        self.cancelled = threading.Event()
        self._loop = loop
        # Unbounded on purpose: the producer is one model decoding ~100 tokens/s, far slower than
        # any consumer, and the worker must never block on a slow client while owning an instance.
        self._events: asyncio.Queue[Event | _Done | BaseException] = asyncio.Queue()

    # ---- worker thread side

    def post(self, item: Event | _Done | BaseException) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    def run(self, instance: InstanceT) -> None:
        try:
            for event in self.work(instance, self.cancelled):
                if self.cancelled.is_set():
                    break
                self.post(event)
        except RunapiError as exc:
            self.post(exc)
        except Exception as exc:
            log.exception("local model generation failed")
            error = UpstreamError(f"The local model failed during generation: {exc}")
            error.__cause__ = exc
            self.post(error)

    # ---- event loop side

    async def next_event(self) -> Event | None:
        """The next event, or None at the end. Raises the error the generation raised."""
        item = await self._events.get()
        if isinstance(item, _Done):
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        self.cancelled.set()


class _JobQueue(Generic[InstanceT]):
    """The FIFO the workers take from; admission (the bound) is the pool's business."""

    def __init__(self) -> None:
        self._items: deque[Job[InstanceT]] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, job: Job[InstanceT]) -> None:
        with self._cond:
            self._items.append(job)
            self._cond.notify()

    def take(self) -> Job[InstanceT] | None:
        """Block until a job arrives; None once the queue is closed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            return None if self._closed else self._items.popleft()

    def discard(self, job: Job[InstanceT]) -> bool:
        """Remove a job that no worker has taken yet; False when one already has."""
        with self._cond:
            try:
                self._items.remove(job)
            except ValueError:
                return False
            return True

    def close(self) -> list[Job[InstanceT]]:
        with self._cond:
            self._closed = True
            left = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return left


IdleWaiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class WorkerPool(Generic[InstanceT]):
    """`instances` threads, each loading and owning one instance, serving one queue.

    At most `instances + queue_size` jobs are admitted at a time (generating or waiting for an
    instance); one more is refused with `Overloaded` (503) immediately.
    """

    def __init__(
        self,
        *,
        instances: int,
        queue_size: int,
        load: Callable[[int], InstanceT],
        unload: Callable[[InstanceT], None],
        name: str = "runapi-local",
    ) -> None:
        self.instances = max(1, instances)
        self.queue_size = max(0, queue_size)
        self._load = load
        self._unload = unload
        self._name = name
        self._queue: _JobQueue[InstanceT] = _JobQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards the three fields below
        self._admitted = 0
        self._running: set[Job[InstanceT]] = set()
        self._idle_waiters: list[IdleWaiter] = []
        self._closed = False

    async def start(self) -> None:
        """Start the workers; returns once every instance is loaded. Raises the first load error."""
        ready: list[concurrent.futures.Future[None]] = []
        for index in range(self.instances):
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            thread = threading.Thread(
                target=self._serve, args=(index, future), name=f"{self._name}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            ready.append(future)
        try:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in ready))
        except BaseException:
            await self.close()
            raise

    def submit(self, work: Work[InstanceT]) -> Job[InstanceT]:
        """Admit a job, or raise `Overloaded` when the pool is full."""
        job: Job[InstanceT] = Job(asyncio.get_running_loop(), work)
        with self._lock:
            full = self._closed or self._admitted >= self.instances + self.queue_size
            if not full:
                self._admitted += 1
            busy, waiting = len(self._running), self._admitted - len(self._running)
        if full:
            raise Overloaded(
                f"The local model is busy: {busy} generating and {waiting} waiting "
                f"(local.instances = {self.instances}, local.queue_size = {self.queue_size}). "
                "Retry shortly, or raise local.instances / local.queue_size.",
                retry_after=1.0,
            )
        self._queue.put(job)
        return job

    def withdraw(self, job: Job[InstanceT]) -> None:
        """The consumer is gone: drop the job if still queued, stop it if running."""
        job.cancel()
        if self._queue.discard(job):
            with self._lock:
                self._admitted -= 1

    @property
    def busy(self) -> int:
        """Instances generating right now."""
        with self._lock:
            return len(self._running)

    @property
    def waiting(self) -> int:
        """Admitted jobs not yet on an instance."""
        with self._lock:
            return self._admitted - len(self._running)

    async def wait_idle(self) -> None:
        """Return once no instance is generating; bound it with `asyncio.timeout`."""
        idle = asyncio.Event()
        with self._lock:
            if not self._running:
                return
            self._idle_waiters.append((asyncio.get_running_loop(), idle))
        await idle.wait()

    async def close(self, join_seconds: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            for job in self._running:
                job.cancel()
        for job in self._queue.close():
            job.post(UpstreamUnavailable("The local model is shutting down."))
            job.post(_DONE)
        threads, self._threads = self._threads, []
        for thread in threads:
            await asyncio.to_thread(thread.join, join_seconds)

    def _serve(self, index: int, ready: concurrent.futures.Future[None]) -> None:
        try:
            instance = self._load(index)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while (job := self._queue.take()) is not None:
                with self._lock:
                    self._running.add(job)
                try:
                    if not job.cancelled.is_set():  # else withdrawn while a worker was taking it
                        job.run(instance)
                finally:
                    # Free the slot before the consumer sees the end, so a client that sends its
                    # next request at once finds the capacity it just released.
                    self._finished(job)
                    job.post(_DONE)
        finally:
            self._unload(instance)

    def _finished(self, job: Job[InstanceT]) -> None:
        waiters: list[IdleWaiter] = []
        with self._lock:
            self._running.discard(job)
            self._admitted -= 1
            if not self._running:
                waiters, self._idle_waiters = self._idle_waiters, []
        for loop, idle in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(idle.set)
