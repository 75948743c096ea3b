"""SQLite's WAL checkpoints, on a thread of their own instead of inside a writer's commit.

Every commit appends whole pages to the write-ahead log: one request's hold, settlement and task
rows touch about twenty pages (tables and their indexes); at 200 req/s the WAL grew by ~95 KB per
request (200 MB for ~2,100 requests with checkpoints off, lab). By
default the commit that takes the WAL past 1,000 pages also copies the log back into the database
file, with its fsyncs, on aiosqlite's thread and under the write lock: at 200 req/s that was a
~20 ms stall every ~215 ms, waited out by every request in flight, and it was the whole p99.

Here the writers leave checkpoints alone (their automatic one sits far above, as a safety net)
and a daemon thread runs PASSIVE checkpoints, which copy pages without taking the write lock or
waiting for anyone. A pass that leaves frames behind (commits kept coming) is repeated at once,
so that the log gets fully copied and the next writer can start it over from the beginning.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: The writers' own automatic checkpoint, in pages: only reached if this thread falls behind or
#: is not running (CLI commands), so the WAL stays bounded either way (~64 MB).
WRITER_AUTOCHECKPOINT_PAGES = 16_384
#: A WAL file grown past this is truncated back to it when it restarts.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# Back-to-back passes per wake-up: each copies only what the previous one left, so few are
# needed; bounded so a flood of commits cannot keep the thread from sleeping.
_PASSES = 8


class WalCheckpointer:
    """Checkpoints one SQLite database file every `interval` seconds while it is written, every
    `idle_interval` seconds while it is not, until `stop`.

    Often, so that each checkpoint has little to copy: in the lab at 200 req/s, every 50 ms took
    the p99 from ~25 ms to ~10 ms, where every 250 ms left it at 12-21 ms."""

    def __init__(self, path: str, interval: float = 0.05, idle_interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.idle_interval = idle_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="runapi-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def checkpoint(self) -> tuple[int, int]:
        """One round of passes; returns (pages in the WAL, pages copied) after the last one."""
        conn = self._connection()
        logged = copied = 0
        for _ in range(_PASSES):
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            logged, copied = int(row[1]), int(row[2])
            if logged <= 0 or copied >= logged:
                break  # all copied: the next commit starts the log over
        return logged, copied

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        return self._conn

    def _run(self) -> None:
        wait, last = self.interval, (-1, -1)
        try:
            while not self._stop.wait(wait):
                try:
                    state = self.checkpoint()
                except sqlite3.Error:
                    # The writers' own checkpoint still bounds the WAL; try again next time.
                    log.warning("WAL checkpoint of %s failed", self.path, exc_info=True)
                    state = (-1, -1)
                # Nothing written since the last round: no need to look again so soon.
                wait = self.idle_interval if state == last and state[0] == state[1] else self.interval
                last = state
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["WAL_SIZE_LIMIT_BYTES", "WRITER_AUTOCHECKPOINT_PAGES", "WalCheckpointer"]
