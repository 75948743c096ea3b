"""What PostgreSQL's sessions wait on while a latency run goes on, sampled from pg_stat_activity.

A disk probe before and after a run reads the disk's usual speed; the stalls that made ours-pg's
p99 hundreds of milliseconds on one machine came with the run's own load, and only the database's
wait events showed them (sessions in `IO:WALSync` for 60-190 ms). So during (b) against ours-pg a
thread polls pg_stat_activity of the bench's database every 50 ms and keeps, per wait event, how
often an active session was seen in it and the oldest transaction seen waiting there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from typing import Any

# Active sessions of the bench's database other than ours: what each waits on (NULL: on the CPU)
# and how long its transaction has been open.
_QUERY = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'),
       extract(epoch FROM clock_timestamp() - xact_start)
FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
"""

Sample = Sequence[tuple[str, float | None]]


def summarize(samples: Iterable[Sample]) -> dict[str, Any]:
    """Per wait event: the sessions seen in it (over all samples) and the oldest transaction seen
    there (ms), the busiest first; plus how many samples saw any active session at all."""
    count = busy = 0
    events: dict[str, dict[str, float]] = {}
    for sample in samples:
        count += 1
        busy += bool(sample)
        for event, age_s in sample:
            seen = events.setdefault(event, {"seen": 0, "oldest_xact_ms": 0.0})
            seen["seen"] += 1
            if age_s is not None:
                seen["oldest_xact_ms"] = max(seen["oldest_xact_ms"], age_s * 1000.0)
    ranked = dict(sorted(events.items(), key=lambda item: -item[1]["seen"]))
    return {"samples": count, "busy_samples": busy, "by_event": ranked}


def describe(summary: dict[str, Any], top: int = 3) -> str:
    events = list(summary["by_event"].items())[:top]
    if not events:
        return f"database: no active session in {summary['samples']} samples"
    shown = ", ".join(
        f"{name} seen {int(e['seen'])} times (oldest {e['oldest_xact_ms']:.0f} ms)" for name, e in events
    )
    return f"database waits ({summary['busy_samples']} of {summary['samples']} samples busy): {shown}"


class WaitSampler:
    """`with WaitSampler(url): ...` samples the database's wait events while the block runs;
    `summary()` afterwards. At most `max_seconds` of sampling, whatever the block does."""

    def __init__(self, database_url: str, interval: float = 0.05, max_seconds: float = 600.0) -> None:
        # The bench's URLs name SQLAlchemy's driver; asyncpg takes the plain form.
        self.url = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.interval, self.max_seconds = interval, max_seconds
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-db-waits", daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def summary(self) -> dict[str, Any]:
        data = summarize(self.samples)
        if self.error is not None:
            data["error"] = self.error
        return data

    def _run(self) -> None:
        try:
            asyncio.run(self._sample())
        except Exception as exc:  # a sampler that cannot connect must not cost the measurement
            self.error = f"{type(exc).__name__}: {exc}"

    async def _sample(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_seconds
            while not self._stop.is_set() and loop.time() < deadline:
                rows = await conn.fetch(_QUERY)
                self.samples.append([(str(r[0]), None if r[1] is None else float(r[1])) for r in rows])
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()


__all__ = ["WaitSampler", "describe", "summarize"]
