"""Limiter fixtures: a hand-driven clock, both backends (Redis when RUNAPI_TEST_REDIS_URL is set)
and a fresh database (PostgreSQL too when RUNAPI_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from runapi.limits import InProcessLimiterBackend, Limiter, LimiterBackend, RedisLimiterBackend

REDIS_URL = os.environ.get("RUNAPI_TEST_REDIS_URL")
BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


class FakeClock:
    """Seconds, moved only by the test: refill timing without sleeping."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def unique_prefix() -> str:
    return f"runapi-test:{uuid.uuid4().hex}:"


async def delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def redis_backend(clock: Callable[[], float] | None, prefix: str, **kwargs: float) -> RedisLimiterBackend:
    assert REDIS_URL is not None
    # A generous timeout: the tests share one Redis with other suites running at the same time.
    options: dict[str, float] = {"timeout": 5.0, "output_flush_seconds": 0.0, **kwargs}
    return RedisLimiterBackend.from_url(REDIS_URL, clock=clock, prefix=prefix, **options)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[LimiterBackend]:
    if request.param == "memory":
        memory = InProcessLimiterBackend(clock=clock)
        yield memory
        await memory.aclose()
        return
    if REDIS_URL is None:
        pytest.skip("RUNAPI_TEST_REDIS_URL is not set")
    prefix = unique_prefix()
    shared = redis_backend(clock, prefix)
    yield shared
    await shared.aclose()
    await delete_prefix(REDIS_URL, prefix)


@pytest.fixture
async def limiter(backend: LimiterBackend, clock: FakeClock) -> AsyncIterator[Limiter]:
    lim = Limiter(backend, clock=clock)
    yield lim
    await lim.aclose()  # stops the lease keeper; closing the backend twice is harmless
