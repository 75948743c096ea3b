"""SQLite WAL checkpoints leave the writers' commits for a background thread (store/checkpoint.py):
writers no longer checkpoint at SQLite's default 1,000 pages, the thread's passes copy the log
so that the next commit starts it over, and the thread lives exactly as long as the database."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runapi.store.checkpoint import WalCheckpointer
from runapi.store.database import Database

_FRAME = 4096 + 24  # a page and its WAL frame header


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    async with database.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield database
    await database.dispose()


async def commit_rows(db: Database, count: int) -> None:
    for n in range(count):
        async with db.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (f"row {n}",))


def wal_frames(path: Path) -> int:
    return os.path.getsize(str(path) + "-wal") // _FRAME


async def test_writers_do_not_checkpoint_at_sqlites_default_threshold(db: Database, tmp_path: Path) -> None:
    await commit_rows(db, 1_200)
    # One frame at least per commit, none reused: SQLite's default would have restarted the log
    # (and stalled a commit copying it) after 1,000 pages.
    assert wal_frames(tmp_path / "wal.db") >= 1_200


async def test_a_checkpoint_copies_the_log_and_the_next_commit_starts_it_over(
    db: Database, tmp_path: Path
) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "wal.db"))
    await commit_rows(db, 300)
    logged, copied = checkpointer.checkpoint()
    assert logged >= 300
    assert copied == logged
    await commit_rows(db, 1)
    logged, copied = checkpointer.checkpoint()
    assert logged <= 4, "the commit after a full copy writes from the start of the log"
    assert copied == logged
    checkpointer.stop()


async def test_the_thread_runs_from_start_checkpoints_until_dispose(tmp_path: Path) -> None:
    def running() -> bool:
        return any(t.name == "runapi-wal-checkpoint" for t in threading.enumerate())

    database = Database(f"sqlite:///{tmp_path / 'life.db'}")
    assert not running()
    database.start_checkpoints()
    database.start_checkpoints()  # idempotent: still one thread
    assert sum(t.name == "runapi-wal-checkpoint" for t in threading.enumerate()) == 1
    await database.dispose()
    assert not running()
    memory = Database("sqlite:///:memory:")
    memory.start_checkpoints()  # nothing to checkpoint in memory
    assert not running()
    await memory.dispose()
