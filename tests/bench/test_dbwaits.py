"""The bench's sampler of PostgreSQL's wait events: the arithmetic, and against the real server a
session seen sleeping inside its transaction."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from bench.dbwaits import WaitSampler, describe, summarize

from tests.databases import PG_URL


def test_summary_counts_sessions_per_event_and_keeps_the_oldest_transaction() -> None:
    samples = [
        [],
        [("IO:WALSync", 0.06), ("CPU", 0.001)],
        [("IO:WALSync", 0.19), ("Lock:transactionid", None)],
    ]
    summary = summarize(samples)
    assert summary["samples"] == 3
    assert summary["busy_samples"] == 2
    assert list(summary["by_event"]) == ["IO:WALSync", "CPU", "Lock:transactionid"]  # busiest first
    assert summary["by_event"]["IO:WALSync"] == {"seen": 2, "oldest_xact_ms": pytest.approx(190.0)}
    assert summary["by_event"]["Lock:transactionid"] == {"seen": 1, "oldest_xact_ms": 0.0}
    line = describe(summary, top=1)
    assert line == "database waits (2 of 3 samples busy): IO:WALSync seen 2 times (oldest 190 ms)"
    assert describe(summarize([[], []])) == "database: no active session in 2 samples"


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="RUNAPI_TEST_POSTGRES_URL is not set")
def test_a_session_sleeping_in_its_transaction_is_seen_with_its_age() -> None:
    assert PG_URL is not None
    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def sleep_in_a_transaction() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_sleep(0.4)")
        finally:
            await conn.close()

    with WaitSampler(PG_URL, interval=0.02) as sampler:
        time.sleep(0.1)  # the sampler is connected and polling (this thread is not the loop's)
        asyncio.run(sleep_in_a_transaction())
    summary = sampler.summary()
    assert "error" not in summary
    sleeping = summary["by_event"]["Timeout:PgSleep"]
    assert sleeping["seen"] >= 3
    assert 200.0 <= sleeping["oldest_xact_ms"] < 5000.0
    assert summary["samples"] > summary["busy_samples"] > 0  # idle before the sleep began


def test_a_sampler_that_cannot_connect_reports_it_and_does_not_raise() -> None:
    with WaitSampler("postgresql://postgres@127.0.0.1:1/nowhere") as sampler:
        pass
    summary = sampler.summary()
    assert summary["samples"] == 0
    assert "error" in summary
