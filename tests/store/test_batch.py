"""`BatchTransaction` on both databases: queued writes keep their order, reads see them, a failure
anywhere undoes everything, and on SQLite a batch without reads is one trip to the driver."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import pytest
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from runapi.store.batch import CheckFailed
from runapi.store.bulk import driver_connection
from runapi.store.database import Database
from runapi.store.schema import tasks

from .rows import task_row

INSERT = insert(tasks)
SET_STATUS = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"), tasks.c.status == "processing")
    .values(status=bindparam("b_status"))
    .returning(tasks.c.id, tasks.c.status)
)
SET_MODEL = update(tasks).where(tasks.c.id == bindparam("b_id")).values(model=bindparam("b_model"))


async def _statuses(db: Database) -> dict[str, str]:
    async with db.connect() as conn:
        return {r.id: r.status for r in await conn.execute(select(tasks.c.id, tasks.c.status))}


async def test_reads_see_the_queued_writes_in_order(db: Database) -> None:
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t1"), task_row("t2")])
        changed = await tx.execute_one(SET_MODEL, {"b_id": "t1", "b_model": "MiniMax-M3"})
        returned = await tx.fetch(SET_STATUS, {"b_id": "t2", "b_status": "completed"})
        count = (await tx.run(select(func.count()).select_from(tasks))).scalar_one()
        tx.add(SET_MODEL, [{"b_id": "t2", "b_model": "MiniMax-M2.5"}])
    assert changed == 1
    assert returned == [("t2", "completed")]
    assert count == 2
    async with db.connect() as conn:
        models = dict((await conn.execute(select(tasks.c.id, tasks.c.model))).all())
    assert models == {"t1": "MiniMax-M3", "t2": "MiniMax-M2.5"}
    assert await _statuses(db) == {"t1": "processing", "t2": "completed"}


async def _failing_batch(db: Database, where: str) -> None:
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t1")])
        await tx.execute_one(SET_MODEL, {"b_id": "t0", "b_model": "changed"})
        if where == "in_the_queue":
            tx.add(INSERT, [task_row("t0")])  # duplicate primary key, found at COMMIT time
        elif where == "after_a_read":
            tx.add(INSERT, [task_row("t2")])
            await tx.fetch(SET_STATUS, {"b_id": "t0", "b_status": "failed"})
            await tx.run(insert(tasks).values(task_row("t0")))
        else:
            raise RuntimeError("the caller failed between statements")


@pytest.mark.parametrize("where", ["in_the_queue", "after_a_read", "in_the_block"])
async def test_a_failure_anywhere_undoes_the_whole_batch(db: Database, where: str) -> None:
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t0")])
    # Straight to the driver (sqlite3's or asyncpg's error), or through SQLAlchemy (`run`).
    with pytest.raises((IntegrityError, sqlite3.IntegrityError, asyncpg.UniqueViolationError, RuntimeError)):
        await _failing_batch(db, where)
    assert await _statuses(db) == {"t0": "processing"}
    async with db.connect() as conn:
        model = (await conn.execute(select(tasks.c.model).where(tasks.c.id == "t0"))).scalar_one()
    assert model == "MiniMax-M2.7"
    # The connection went back clean: the next batch commits.
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t3")])
    assert set(await _statuses(db)) == {"t0", "t3"}


async def test_on_sqlite_a_batch_without_reads_is_one_trip(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("trips to aiosqlite's thread exist only on SQLite")
    trips = 0
    async with db.batch() as tx:
        driver = driver_connection(tx.conn)
        original = driver._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal trips
            trips += 1
            return await original(fn, *args, **kwargs)

        driver._execute = counted
        tx.add(INSERT, [task_row("t1"), task_row("t2")])
        tx.add(SET_MODEL, [{"b_id": "t1", "b_model": "x"}])
    del driver._execute  # counted up to and including the connection's return to the pool
    assert trips == 1  # BEGIN IMMEDIATE, both statements and COMMIT together; no reset trip
    assert set(await _statuses(db)) == {"t1", "t2"}


async def test_on_sqlite_a_connection_returned_inside_a_transaction_is_rolled_back(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("the checkin rollback is SQLite's (PostgreSQL keeps the pool's reset)")
    async with db.connect() as conn:
        driver = driver_connection(conn)
        await driver.execute("BEGIN IMMEDIATE")
        await driver.executemany(db.bulk.of(INSERT).sql, db.bulk.of(INSERT).to_tuples([task_row("t1")]))
    # Left without COMMIT: the write lock is free again and the row is gone.
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t2")])
    assert set(await _statuses(db)) == {"t2"}


async def test_a_checked_statement_that_changes_other_than_its_rows_stops_the_queue_and_undoes_the_batch(
    db: Database,
) -> None:
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t0")])
    async with db.batch() as tx:
        tx.add_checked(SET_MODEL, {"b_id": "t0", "b_model": "checked"})  # matches: goes on
        tx.add(INSERT, [task_row("t1")])

    async def bet_on_a_missing_row() -> None:
        async with db.batch() as tx:
            tx.add(INSERT, [task_row("t2")])
            tx.add_checked(SET_MODEL, {"b_id": "nobody", "b_model": "x"})
            tx.add(INSERT, [task_row("t3")])

    async def bet_on_two_rows_where_one_matches() -> None:
        async with db.batch() as tx:
            tx.add(INSERT, [task_row("t4")])
            tx.add_checked(SET_MODEL, {"b_id": "t0", "b_model": "twice?"}, changes=2)

    with pytest.raises(CheckFailed):
        await bet_on_a_missing_row()
    with pytest.raises(CheckFailed):
        await bet_on_two_rows_where_one_matches()
    assert set(await _statuses(db)) == {"t0", "t1"}
    async with db.connect() as conn:
        model = (await conn.execute(select(tasks.c.model).where(tasks.c.id == "t0"))).scalar_one()
    assert model == "checked"
