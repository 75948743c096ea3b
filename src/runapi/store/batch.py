"""`BatchTransaction`: the write transaction of the hot batch writers (the ledger's group commit,
the task write-behind), sent to the database in as few trips as its reads allow.

Statements whose result nobody reads are queued (`add`) and go out together with the next
statement whose result is needed (`execute_one`, `fetch`), or with the COMMIT. On SQLite every send
is one trip to aiosqlite's thread, and a trip costs two thread wake-ups and about 35 µs of CPU (a
five-statement transaction measured ~200 µs of CPU in five trips, ~65 µs in one, on the 2-core
bench machine, and a trip after an idle moment waits ~170 µs for the thread to wake): a ledger
batch takes one trip when its bets hold (guards checked with the rest, `add_checked`), a task
batch one. On PostgreSQL, where asyncpg sends one statement per round trip, the queue (and a last
statement whose row count is read) goes out as simple-query scripts with the values written in
(`store/pg_script.py`), cut around any executemany too large for a script, which goes
parameterized, as does a group with a value that cannot be a literal. The rare statements (free
grants, refusals, late settlements) go through SQLAlchemy with `run`, after the queue.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert, Update

from runapi.store.bulk import BulkStatements
from runapi.store.pg_script import NotScriptable, render, render_rows, status_count

# (sql, parameters, kind): kind is _ONE, _MANY, or N > 0, a checked statement that must change
# exactly N rows (`add_checked`).
_Queued = tuple[str, Any, int]
_ONE, _MANY = 0, -1
_ROWCOUNT = "rowcount"
_ROWS = "rows"
# Past this many rows a script costs PostgreSQL more parsing than the trips it saves (a prepared
# executemany pipelines its rows anyway): the task write-behind's big batches go parameterized.
_SCRIPT_ROWS = 64


class BatchTransaction:
    __slots__ = ("_bulk", "_driver", "_pg", "_queue", "_scripts", "_sent", "conn")

    def __init__(
        self,
        conn: AsyncConnection,
        bulk: BulkStatements,
        driver: Any | None,
        *,
        pg: Any | None = None,
        scripts: bool = False,
    ) -> None:
        self.conn = conn
        self._bulk = bulk
        self._driver = driver  # the aiosqlite connection on SQLite
        self._pg = pg  # the asyncpg connection on PostgreSQL (in autocommit: BEGIN is queued)
        self._scripts = scripts  # literals are safe on it (`standard_conforming_strings` on)
        self._queue: list[_Queued] = []
        self._sent = False  # whether anything (so the BEGIN) reached the database

    def add(self, statement: Insert | Update, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue one executemany of a bulk statement; it runs before anything sent after it."""
        if rows:
            bulk = self._bulk.of(statement)
            self._queue.append((bulk.sql, bulk.to_tuples(rows), _MANY))

    def add_sql(self, sql: str) -> None:
        self._queue.append((sql, (), _ONE))

    def add_checked(self, statement: Update, row: Mapping[str, Any], changes: int = 1) -> None:
        """Queue an UPDATE (without RETURNING) that must change exactly `changes` rows. If it does
        not, the send stops right there and raises `CheckFailed`, and the batch rolls back: a
        guarded UPDATE and what depends on it go out in one trip, on the bet that the guard holds.
        SQLite checks the row count in its thread; a PostgreSQL script makes the statement fail
        (`_checked_script`), and the parameterized path reads the count."""
        assert changes > 0
        bulk = self._bulk.of(statement)
        self._queue.append((bulk.sql, bulk.row_tuple(row), changes))

    async def execute_one(self, statement: Insert | Update, row: Mapping[str, Any]) -> int:
        """Run a bulk statement once (after the queue); the number of rows it changed."""
        bulk = self._bulk.of(statement)
        result: int = await self._send((bulk.sql, bulk.row_tuple(row), _ROWCOUNT))
        return result

    async def fetch(self, statement: Insert | Update, row: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a bulk statement once (after the queue); the rows of its RETURNING clause."""
        bulk = self._bulk.of(statement)
        rows: list[tuple[Any, ...]] = await self._send((bulk.sql, bulk.row_tuple(row), _ROWS))
        return rows

    async def run(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        """Any SQLAlchemy statement, with its own result processing (the rare paths)."""
        await self.flush()
        return await self.conn.execute(statement, params)

    async def flush(self) -> None:
        if self._queue:
            await self._send(None)

    async def _send(self, last: tuple[str, Any, str] | None) -> Any:
        queue, self._queue = self._queue, []
        self._sent = True
        if self._driver is not None:
            # One trip: the queue and the last statement run in aiosqlite's thread, in order.
            # `_execute` is how aiosqlite's own methods reach that thread (SQLAlchemy's adapter
            # uses the same internals).
            return await self._driver._execute(_run_on_sqlite, self._driver._conn, queue, last)
        return await self._send_pg(queue, last)

    async def _send_pg(self, queue: list[_Queued], last: tuple[str, Any, str] | None) -> Any:
        pg: Any = self._pg
        # A row count comes back as the script's last command status; RETURNING rows do not.
        fold_last = last is not None and last[2] == _ROWCOUNT
        folded = [*queue, (last[0], last[1], _ONE)] if fold_last and last is not None else queue
        status: str | None = None
        for group in _groups(folded):
            status = await self._send_group(pg, group)
        if fold_last:
            return status_count(status or "")
        if last is None:
            return None
        sql, params, _ = last
        return [tuple(r) for r in await pg.fetch(sql, *params)]

    async def _send_group(self, pg: Any, group: list[_Queued]) -> str | None:
        """One script (one round trip) when the values allow, else statement by statement; the
        status of the group's last statement."""
        script = self._script(group)
        if script is not None:
            try:
                status: str = await pg.execute(script)
            except asyncpg.InvalidTextRepresentationError as exc:
                if _CHECK_FAILED in str(exc):
                    raise CheckFailed(str(exc)) from exc
                raise
            return status
        last_status: str | None = None
        for sql, params, kind in group:
            if kind == _MANY:
                await pg.executemany(sql, params)
                last_status = None
            elif kind == _ONE:
                last_status = await pg.execute(sql, *params)
            elif (changed := status_count(last_status := await pg.execute(sql, *params))) != kind:
                raise CheckFailed(f"{changed} rows changed, not {kind}: {sql}")
        return last_status

    def _script(self, statements: list[_Queued]) -> str | None:
        if not self._scripts or not statements:
            return None
        if sum(len(params) if kind == _MANY else 1 for _, params, kind in statements) > _SCRIPT_ROWS:
            return None  # one large executemany (`_groups`): prepared and pipelined by asyncpg
        parts: list[str] = []
        try:
            for sql, params, kind in statements:
                if kind == _MANY:
                    parts.extend(render_rows(sql, params))
                elif kind == _ONE:
                    parts.append(render(sql, params) if params else sql)
                else:
                    parts.append(_checked_script(render(sql, params), kind))
        except NotScriptable:
            return None
        return ";\n".join(parts)

    @property
    def sent_anything(self) -> bool:
        return self._sent


def _groups(queue: list[_Queued]) -> list[list[_Queued]]:
    """The queue in order, cut where a script would grow past `_SCRIPT_ROWS` rows: an executemany
    that large goes alone (parameterized), so BEGIN and a guard before it, and COMMIT after it,
    still ride in scripts of their own instead of a trip each."""
    groups: list[list[_Queued]] = []
    size = 0
    for item in queue:
        rows = len(item[1]) if item[2] == _MANY else 1
        if not groups or size + rows > _SCRIPT_ROWS:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += rows
    return groups


def _run_on_sqlite(conn: sqlite3.Connection, queue: list[_Queued], last: tuple[str, Any, str] | None) -> Any:
    """Runs in aiosqlite's thread; an error, or a checked statement that changed nothing, stops at
    that statement (the caller rolls back)."""
    for sql, params, kind in queue:
        if kind == _MANY:
            conn.executemany(sql, params)
        elif kind == _ONE:
            conn.execute(sql, params)
        elif (changed := conn.execute(sql, params).rowcount) != kind:
            raise CheckFailed(f"{changed} rows changed, not {kind}: {sql}")
    if last is None:
        return None
    sql, params, want = last
    cursor = conn.execute(sql, params)
    if want == _ROWCOUNT:
        return cursor.rowcount
    return [tuple(r) for r in cursor.fetchall()]


_CHECK_FAILED = "runapi: check failed"


def _checked_script(update_sql: str, changes: int) -> str:
    """The UPDATE, failing unless it changed `changes` rows. A script cannot branch, but an error
    stops it (the rest is skipped and the batch rolls back): the cast of a text made at run time
    fails only in that branch (a constant there would be folded, and fail, at planning time)."""
    return (
        f"WITH checked AS ({update_sql} RETURNING 1) SELECT CASE WHEN count(*) = {int(changes)} THEN 0 "
        f"ELSE ('{_CHECK_FAILED}: ' || count(*) || ' rows changed, not {int(changes)}')::int END FROM checked"
    )


class CheckFailed(Exception):
    """A statement queued with `BatchTransaction.add_checked` changed other than its rows."""


__all__ = ["BatchTransaction", "CheckFailed"]
