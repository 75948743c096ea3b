"""What only the shared backend has: several processes, leases, scripts, and Redis being down."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from runapi.errors import Overloaded
from runapi.limits import (
    BucketState,
    InProcessLimiterBackend,
    Limiter,
    LimitExceeded,
    LimitState,
    LimitTicket,
    LimitValues,
    RedisLimiterBackend,
    build_limiter,
    redis_script,
)
from runapi.limits.buckets import SlotRef
from runapi.settings import load_settings
from tests.limits.conftest import REDIS_URL, FakeClock, delete_prefix, redis_backend, unique_prefix

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="RUNAPI_TEST_REDIS_URL is not set")
ROOT = Path(__file__).resolve().parents[2]


def values(
    rpm: int = 1000, itpm: int = 1_000_000, otpm: int = 1_000_000, concurrent: int = 100
) -> LimitValues:
    return LimitValues(rpm=rpm, itpm=itpm, otpm=otpm, concurrent=concurrent)


async def admit(limiter: Limiter, limits: LimitValues, key: str = "key_a", est: int = 10) -> LimitTicket:
    return await limiter.admit(
        key_id=key, account_id=1, model_class="standard", limits=limits, est_input_tokens=est
    )


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    if REDIS_URL is not None:
        await delete_prefix(REDIS_URL, name)


# -- several processes on one Redis


def run_hammers(prefix: str, mode: str, limit: int, attempts: int) -> list[int]:
    assert REDIS_URL is not None
    start_at = time.time() + 2.0  # both interpreters are up by then, so they hammer together
    args = [REDIS_URL, prefix, mode, str(limit), str(attempts), str(start_at)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.limits.hammer", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        counts.append(int(out.strip()))
    return counts


@needs_redis
@pytest.mark.redis
def test_two_processes_share_one_requests_budget(prefix: str) -> None:
    limit = 30
    counts = run_hammers(prefix, "rpm", limit, attempts=100)
    assert all(c > 0 for c in counts), counts  # both processes really competed
    # N, not 2N; +1 allows one request refilled while the processes ran (30 RPM = 1 per 2 s).
    assert limit <= sum(counts) <= limit + 1, counts


@needs_redis
@pytest.mark.redis
def test_two_processes_share_one_concurrency_cap(prefix: str) -> None:
    counts = run_hammers(prefix, "concurrent", 12, attempts=40)
    assert all(c > 0 for c in counts), counts
    assert sum(counts) == 12, counts


# -- leases: a dead process's slots expire, a live one's are kept


@needs_redis
@pytest.mark.redis
async def test_slots_of_a_dead_process_expire(clock: FakeClock, prefix: str) -> None:
    limits = values(concurrent=1)
    dead = Limiter(redis_backend(clock, prefix, lease_seconds=30.0), clock=clock)
    await admit(dead, limits)  # never released: the process "dies" holding the slot
    await dead.aclose()
    alive = Limiter(redis_backend(clock, prefix, lease_seconds=30.0), clock=clock)
    try:
        with pytest.raises(LimitExceeded):
            await admit(alive, limits)
        clock.advance(30.001)
        ticket = await admit(alive, limits)
        await alive.release(ticket, input_tokens=None, output_tokens=None)
    finally:
        await alive.aclose()


@needs_redis
@pytest.mark.redis
async def test_lease_keeper_keeps_a_long_request_slot(clock: FakeClock, prefix: str) -> None:
    assert REDIS_URL is not None
    lease = 0.15  # the keeper wakes every lease/3 real seconds; the lease itself runs on `clock`
    limiter = Limiter(redis_backend(clock, prefix, lease_seconds=lease), clock=clock)
    limits = values(concurrent=1)
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        ticket = await admit(limiter, limits)
        slots_key = f"{prefix}{{a1}}:k:key_a:standard:slots"
        clock.advance(0.1)
        wanted = (clock.now + lease) * 1000
        for _ in range(200):  # bounded wait for the keeper's next refresh
            score = await client.zscore(slots_key, ticket.slot.slot_id)
            if score is not None and score >= wanted - 1:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the lease keeper never refreshed the slot")
        clock.advance(0.1)  # past the first lease, within the refreshed one
        with pytest.raises(LimitExceeded):
            await admit(limiter, limits)
        await limiter.release(ticket, input_tokens=None, output_tokens=None)
        assert await client.zscore(slots_key, ticket.slot.slot_id) is None
        await admit(limiter, limits)
    finally:
        await client.aclose()
        await limiter.aclose()


# -- scripts and keys


@needs_redis
@pytest.mark.redis
async def test_scripts_reload_after_redis_forgets_them(clock: FakeClock, prefix: str) -> None:
    backend = redis_backend(clock, prefix)
    limiter = Limiter(backend, clock=clock)
    try:
        await backend.load_scripts()
        # As after a Redis restart: our cached sha is unknown to the server (NOSCRIPT).
        backend._shas[redis_script.ADMIT] = "0" * 40
        ticket = await admit(limiter, values())
        assert limiter.view(ticket).requests.remaining == 999
    finally:
        await limiter.aclose()


@needs_redis
@pytest.mark.redis
async def test_state_keys_expire_and_share_one_cluster_slot(clock: FakeClock, prefix: str) -> None:
    assert REDIS_URL is not None
    limiter = Limiter(redis_backend(clock, prefix), clock=clock)
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await admit(limiter, values(rpm=60))
        keys = sorted([k async for k in client.scan_iter(match=prefix + "*")])
        assert len(keys) == 4
        assert all("{a1}" in k for k in keys)  # one hash tag per account
        for key in keys:
            ttl = await client.pttl(key)
            # Buckets: until full again (1 s for one request at 60 RPM) + margin; slots: lease + margin.
            assert 0 < ttl <= 61_000
    finally:
        await client.aclose()
        await limiter.aclose()


@needs_redis
@pytest.mark.redis
async def test_server_clock_is_used_by_default(prefix: str) -> None:
    assert REDIS_URL is not None
    limiter = Limiter(RedisLimiterBackend.from_url(REDIS_URL, prefix=prefix, timeout=5.0))
    try:
        limits = values(rpm=2)
        await admit(limiter, limits)
        await admit(limiter, limits)
        with pytest.raises(LimitExceeded) as info:
            await admit(limiter, limits)
        assert 0 < (info.value.retry_after or 0) <= 30.0
    finally:
        await limiter.aclose()


@needs_redis
@pytest.mark.redis
async def test_output_debits_are_coalesced(clock: FakeClock, prefix: str) -> None:
    limiter = Limiter(redis_backend(clock, prefix, output_flush_seconds=0.25), clock=clock)
    try:
        limits = values(otpm=1000)
        ticket = await admit(limiter, limits)
        for _ in range(10):
            await limiter.add_output(ticket, 10)
        assert limiter.view(ticket).output_tokens.remaining == 1000  # not sent yet
        clock.advance(0.25)
        await limiter.add_output(ticket, 10)
        assert limiter.view(ticket).output_tokens.remaining == 890  # all 110, in one call
        await limiter.add_output(ticket, 5)
        await limiter.release(ticket, input_tokens=None, output_tokens=None)
        assert limiter.view(ticket).output_tokens.remaining == 885
    finally:
        await limiter.aclose()


@needs_redis
@pytest.mark.redis
async def test_both_backends_agree_step_by_step(prefix: str) -> None:
    """The Lua script and the Python rules are two copies of one algorithm: same inputs, same
    answers. Values are chosen so refills are exact in binary floating point."""
    memory_clock, redis_clock = FakeClock(), FakeClock()
    memory = Limiter(InProcessLimiterBackend(clock=memory_clock), clock=memory_clock)
    # Leases are the one intended difference (slots expire unless refreshed); make them outlast the test.
    shared = Limiter(redis_backend(redis_clock, prefix, lease_seconds=1e6), clock=redis_clock)
    limits = LimitValues(rpm=120, itpm=6000, otpm=600, concurrent=3)
    rng = random.Random(20260720)
    open_tickets: list[tuple[LimitTicket, LimitTicket]] = []
    try:
        for _ in range(300):
            step = rng.choice(("admit", "admit", "output", "release", "wait"))
            if step == "admit":
                key, est = rng.choice(("k1", "k2")), rng.choice((0, 100, 900, 2500, 7000))
                outcomes: list[LimitTicket | LimitExceeded] = []
                for limiter in (memory, shared):
                    try:
                        outcomes.append(await admit(limiter, limits, key=key, est=est))
                    except LimitExceeded as exc:
                        outcomes.append(exc)
                a, b = outcomes
                if isinstance(a, LimitExceeded) or isinstance(b, LimitExceeded):
                    assert isinstance(a, LimitExceeded), (a, b)
                    assert isinstance(b, LimitExceeded), (a, b)
                    assert (a.refusal.scope, a.refusal.dimension) == (b.refusal.scope, b.refusal.dimension)
                    assert a.retry_after == pytest.approx(b.retry_after)
                    assert a.state == b.state
                else:
                    assert isinstance(a, LimitTicket)
                    assert isinstance(b, LimitTicket)
                    assert memory.view(a) == shared.view(b)
                    open_tickets.append((a, b))
            elif step == "output" and open_tickets:
                a, b = rng.choice(open_tickets)
                n = rng.choice((5, 50, 400))
                await memory.add_output(a, n)
                await shared.add_output(b, n)
                assert memory.view(a) == shared.view(b)
            elif step == "release" and open_tickets:
                a, b = open_tickets.pop(rng.randrange(len(open_tickets)))
                used_in, used_out = rng.choice((None, 0, 300, 3000)), rng.choice((None, 0, 80))
                await memory.release(a, input_tokens=used_in, output_tokens=used_out)
                await shared.release(b, input_tokens=used_in, output_tokens=used_out)
                assert memory.view(a) == shared.view(b)
            else:
                seconds = rng.choice((0.5, 1.0, 5.0, 30.0))
                memory_clock.advance(seconds)
                redis_clock.advance(seconds)
    finally:
        await memory.aclose()
        await shared.aclose()


# -- Redis down: a documented, bounded answer in both failure modes


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers: the case a timeout, not a refusal, must catch."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("unreachable", ["refused", "silent"])
async def test_redis_down_fails_closed_with_503(unreachable: str, silent_server: str) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0" if unreachable == "refused" else silent_server
    limiter = Limiter(RedisLimiterBackend.from_url(url, timeout=0.2), failure_mode="closed")
    try:
        with pytest.raises(Overloaded) as info:
            await asyncio.wait_for(admit(limiter, values()), timeout=10)  # never a hang
        assert info.value.status == 503
        assert info.value.retry_after is not None
        assert "unavailable" in info.value.message
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("unreachable", ["refused", "silent"])
async def test_redis_down_fails_open_unchecked(
    unreachable: str, silent_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0" if unreachable == "refused" else silent_server
    limiter = Limiter(RedisLimiterBackend.from_url(url, timeout=0.2), failure_mode="open")
    try:
        with caplog.at_level(logging.WARNING, logger="runapi.limits.limiter"):
            tickets = [await asyncio.wait_for(admit(limiter, values(rpm=1)), timeout=10) for _ in range(3)]
        assert not any(t.checked for t in tickets)
        warnings = [r for r in caplog.records if "not enforced" in r.getMessage()]
        assert len(warnings) == 1  # throttled, not one per request
        await limiter.add_output(tickets[0], 100)
        await limiter.release(tickets[0], input_tokens=5, output_tokens=100)
    finally:
        await limiter.aclose()


async def test_redis_lost_after_admission_never_raises_from_release(clock: FakeClock) -> None:
    """A ticket admitted while Redis was up is released after it went away: no exception (the
    slot's lease expires on its own)."""
    url = f"redis://127.0.0.1:{closed_port()}/0"
    backend = RedisLimiterBackend.from_url(url, timeout=0.2, output_flush_seconds=0.0)
    limiter = Limiter(backend, clock=clock)
    full = BucketState(limit=1000, remaining=1000, reset_seconds=0.0)
    ticket = LimitTicket(
        slot=SlotRef(key_id="k", account_id=1, model_class="standard", slot_id="s"),
        limits=values(),
        est_input_tokens=10,
        state=LimitState(requests=full, input_tokens=full, output_tokens=full),
    )
    try:
        await asyncio.wait_for(limiter.add_output(ticket, 50), timeout=10)
        assert ticket.output_debited == 0  # kept for the next flush
        await asyncio.wait_for(limiter.release(ticket, input_tokens=10, output_tokens=60), timeout=10)
        assert ticket.released
    finally:
        await limiter.aclose()


# -- choosing the backend from the settings


async def test_build_limiter_from_settings() -> None:
    default = build_limiter(load_settings(env={}))
    assert isinstance(default.backend, InProcessLimiterBackend)
    shared = build_limiter(load_settings(env={"RUNAPI_REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert isinstance(shared.backend, RedisLimiterBackend)
    assert shared.failure_mode == "closed"
    await shared.aclose()
    opened = build_limiter(
        load_settings(env={"RUNAPI_REDIS_URL": "redis://127.0.0.1:1/0", "RUNAPI_REDIS_FAILURE_MODE": "open"})
    )
    assert opened.failure_mode == "open"
    await opened.aclose()
    with pytest.raises(ValueError, match="RUNAPI_REDIS_URL"):
        build_limiter(load_settings(env={"RUNAPI_WORKERS": "4"}))
    disabled = build_limiter(load_settings(env={"RUNAPI_WORKERS": "4", "RUNAPI_LIMITS_ENABLED": "false"}))
    assert not disabled.enabled
