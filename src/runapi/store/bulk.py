"""Hot-path batch statements: compiled once per dialect, run with plain tuples.

A batch writer (task write-behind, ledger group commit) sends hundreds of rows a second through a
handful of fixed statements. SQLAlchemy's executemany path rebuilds a parameter dict per row
(`construct_params`), then a list per row through every column's bind processor; with the 43
columns of a task row that was a visible share of each request's CPU. Here the statement is
compiled once, its positional parameter order and the dialect's own bind processors are looked
up once, and each row becomes one tuple. The SQL text, the values' encoding (SQLite's datetime
text, JSON through the engine's serializer) and the transaction are SQLAlchemy's, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert, Update

_MISSING: Any = object()


class BulkStatement:
    """One INSERT/UPDATE, for `executemany` (or a single run, RETURNING rows with `fetch`) with
    rows given as mappings.

    A key missing from a row takes its column's scalar default (an INSERT's `default=`), else
    fails loudly (KeyError) instead of writing NULL.
    """

    __slots__ = ("_params", "_sqlite", "sql")

    def __init__(self, statement: Insert | Update, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: bulk statements need a positional paramstyle")
        self.sql = str(compiled)
        self._sqlite = dialect.name == "sqlite"
        table = statement.table
        # Per position: (row key, processor, default), or (None, processed literal, None) for a
        # literal of the statement itself (`status = 'open'`), processed once here.
        params: list[tuple[str | None, Any, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if not bind.required:
                value = bind.effective_value
                params.append((None, processor(value) if processor is not None else value, None))
                continue
            default: Any = _MISSING
            column = table.c.get(name) if hasattr(table, "c") else None
            if column is not None and column.default is not None and column.default.is_scalar:
                default = column.default.arg
            params.append((name, processor, default))
        self._params = tuple(params)

    @property
    def names(self) -> tuple[str, ...]:
        """The row keys, in the statement's parameter order."""
        return tuple(name for name, _, _ in self._params if name is not None)

    def to_tuples(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [self._tuple(row) for row in rows]

    def _tuple(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for name, extra, default in self._params:
            if name is None:
                out.append(extra)
                continue
            value = row.get(name, default)
            if value is _MISSING:
                raise KeyError(name)
            out.append(value if extra is None else extra(value))
        return tuple(out)

    async def execute_one(self, conn: AsyncConnection, row: Mapping[str, Any]) -> int:
        """Run the statement once; return the number of rows it changed."""
        if self._sqlite:
            cursor = await sqlite_driver(conn).execute(self.sql, self._tuple(row))
            return int(cursor.rowcount)
        result = await conn.exec_driver_sql(self.sql, self._tuple(row))
        return int(result.rowcount)

    async def fetch(self, conn: AsyncConnection, row: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement once and return the rows of its RETURNING clause."""
        if self._sqlite:
            return [tuple(r) for r in await sqlite_driver(conn).execute_fetchall(self.sql, self._tuple(row))]
        result = await conn.exec_driver_sql(self.sql, self._tuple(row))
        return [tuple(r) for r in result.all()]

    async def execute(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self._sqlite:
            # aiosqlite runs an executemany in one trip to its thread; through SQLAlchemy's
            # adapter the same call takes three (cursor, executemany, close), each a thread
            # wake-up in both directions. Same connection, so the same transaction.
            await sqlite_driver(conn).executemany(self.sql, self.to_tuples(rows))
        else:
            await conn.exec_driver_sql(self.sql, self.to_tuples(rows))


def sqlite_driver(conn: AsyncConnection) -> Any:
    """The aiosqlite connection under an SQLAlchemy connection that is checked out (so already
    connected: reading it does no I/O)."""
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


class BulkStatements:
    """The `BulkStatement` of each hot statement of one database, compiled on first use.

    Keyed by the statement object: callers pass statements they build once (module constants),
    so each compiles once per process."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._cache: dict[Insert | Update, BulkStatement] = {}

    def of(self, statement: Insert | Update) -> BulkStatement:
        bulk = self._cache.get(statement)
        if bulk is None:
            bulk = self._cache[statement] = BulkStatement(statement, self._dialect)
        return bulk


__all__ = ["BulkStatement", "BulkStatements"]
