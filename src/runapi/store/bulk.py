"""Hot-path batch statements: compiled once per dialect, run with plain tuples.

A batch writer (task write-behind, ledger group commit) sends hundreds of rows a second through a
handful of fixed statements. SQLAlchemy's executemany path rebuilds a parameter dict per row
(`construct_params`), then a list per row through every column's bind processor; with the 43
columns of a task row that was a visible share of each request's CPU. Here the statement is
compiled once, its positional parameter order and the dialect's own bind processors are looked
up once, and each row becomes one tuple. The SQL text, the values' encoding (SQLite's datetime
text, JSON through the engine's serializer) are SQLAlchemy's, unchanged; `store/batch.py` runs them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert, Update

_MISSING: Any = object()


class BulkStatement:
    """One INSERT/UPDATE whose rows are given as mappings, turned into parameter tuples; a
    `BatchTransaction` runs it (executemany, or once with RETURNING rows).

    A key missing from a row takes its column's scalar default (an INSERT's `default=`), else
    fails loudly (KeyError) instead of writing NULL.
    """

    __slots__ = ("_defaults", "_get", "_params", "_processed", "sql")

    def __init__(self, statement: Insert | Update, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: bulk statements need a positional paramstyle")
        self.sql = str(compiled)
        table = statement.table
        # Per position: (row key, processor, default), or (None, processed literal, None) for a
        # literal of the statement itself (`status = 'open'`), processed once here.
        params: list[tuple[str | None, Any, Any]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            processor = _faster(bind.type.dialect_impl(dialect).bind_processor(dialect), dialect)
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
        # The common case, a statement without literals: one C call fetches all values in order
        # (keys a row leaves out filled from the column defaults first), then only the positions
        # with a processor are touched.
        names = [name for name, _, _ in params if name is not None]
        self._defaults = {name: default for name, _, default in params if name and default is not _MISSING}
        self._get: Any = None
        if names and len(names) == len(params):
            getter = operator.itemgetter(*names)
            self._get = getter if len(names) > 1 else lambda row: (getter(row),)
        self._processed = tuple((i, proc) for i, (_, proc, _) in enumerate(params) if proc is not None)

    @property
    def names(self) -> tuple[str, ...]:
        """The row keys, in the statement's parameter order."""
        return tuple(name for name, _, _ in self._params if name is not None)

    def to_tuples(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [self.row_tuple(row) for row in rows]

    def row_tuple(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        get = self._get
        if get is not None:
            try:
                # Hot rows carry every column (no copy merged with the defaults, 43 entries for a
                # task); a row that leaves some out takes them from the defaults.
                try:
                    values = get(row)
                except KeyError:
                    if not self._defaults:
                        raise
                    values = get({**self._defaults, **row})
            except KeyError:
                pass  # truly missing: the slow path says which
            else:
                if not self._processed:
                    return tuple(values)
                out = list(values)
                for i, processor in self._processed:
                    out[i] = processor(out[i])
                return tuple(out)
        return self._slow_tuple(row)

    def _slow_tuple(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
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


def _faster(processor: Any, dialect: Dialect) -> Any:
    """A stand-in for a dialect's bind processor on a hot row's column, used only where it gives
    the processor's own output on samples checked here once; any other value still goes to the
    processor itself. Several run per request, and the stock ones each add calls (a strictness
    check, a sentinel test, a `%` format over seven attributes)."""
    if processor is None:
        return None
    for make in (_datetime_text, _boolean_int, _json_text):
        fast = make(processor, dialect)
        if fast is not None:
            return fast
    return processor


def _agrees(processor: Any, fast: Any, samples: tuple[Any, ...]) -> bool:
    """Same value and same type (1 is not True) from both, on every sample."""
    try:
        pairs = [(processor(v), fast(v)) for v in samples]
    except Exception:  # not a processor of this kind of value
        return False
    return all(a == b and type(a) is type(b) for a, b in pairs)


_DATETIMES = (
    datetime(2026, 11, 26, 9, 5, 7, 1234, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5),
    datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
)


def _datetime_text(processor: Any, _dialect: Dialect) -> Any:
    """SQLite's DATETIME text is `isoformat` cut before any UTC offset (SQLite stores none); a
    ledger batch binds the same `now` in every row, so the last value is kept for the next."""
    if not _agrees(processor, _iso_text, _DATETIMES):
        return None
    # One (value, text) pair, replaced whole: no reader pairs a value with another's text.
    last: tuple[Any, str] = (None, "")

    def process(value: Any) -> Any:
        nonlocal last
        seen, text = last
        if value is seen and value is not None:
            return text
        if type(value) is not datetime:
            return processor(value)
        text = _iso_text(value)
        last = (value, text)
        return text

    return process


def _iso_text(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]


def _boolean_int(processor: Any, _dialect: Dialect) -> Any:
    """A Boolean where the database has none (SQLite): 1, 0 or NULL; anything else (which the
    stock processor refuses) goes to it."""
    table = {True: 1, False: 0}
    if not _agrees(processor, lambda v: None if v is None else table[v], (None, True, False)):
        return None

    def process(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is bool:
            return table[value]
        return processor(value)

    return process


_JSON_SAMPLES: tuple[Any, ...] = (None, {}, {"a": [1, "x", None]}, [1, 2.5], "text")


def _json_text(processor: Any, dialect: Dialect) -> Any:
    """JSON through the engine's serializer, minus the stock processor's sentinel checks, for the
    plain containers rows carry (None included: it is stored as JSON `null`, as the processor
    does)."""
    serialize = getattr(dialect, "_json_serializer", None)
    if serialize is None or not _agrees(processor, serialize, _JSON_SAMPLES):
        return None

    def process(value: Any) -> Any:
        if value is None or type(value) is dict or type(value) is list:
            return serialize(value)
        return processor(value)

    return process


def driver_connection(conn: AsyncConnection) -> Any:
    """The driver's own connection (aiosqlite's, asyncpg's) under an SQLAlchemy connection that is
    checked out (so already connected: reading it does no I/O)."""
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
