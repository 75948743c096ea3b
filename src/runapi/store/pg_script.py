"""Several PostgreSQL statements in one round trip: a simple-query script with literal values.

asyncpg sends one statement per round trip (prepared, with binary parameters), so a ledger batch
of BEGIN, a guarded UPDATE, two INSERTs and COMMIT took five; at a low request rate each trip is
an idle wake-up of the database and of our loop (~0.6 ms on the bench machine). PostgreSQL's
simple-query protocol takes many statements in one message, but without parameters, so the values
are written into the text here, the way client-side binding drivers do it:

- strings between single quotes with quotes doubled, valid only while the server's
  `standard_conforming_strings` is on (checked once per connection by the caller); a string
  holding NUL, which PostgreSQL text cannot store, makes the batch go the parameterized way;
- numbers in parentheses (`x - (-5)`, never `x --5`, which would start a comment);
- datetimes in ISO 8601 with their offset (a naive one as UTC, as asyncpg reads it).

Anything else (bytes, floats) also sends the batch the parameterized way. The rows of a plain
INSERT go as one statement with many VALUES rows (`render_rows`): PostgreSQL then parses, plans
and starts an executor once per batch, not once per row (lab, PostgreSQL + Redis, two workers at
saturation: the database's CPU per request 315-322 → 235-260 µs), its values without the casts
SQLAlchemy puts on every placeholder. The placeholders of
SQLAlchemy's asyncpg dialect are `$N`; the compiled SQL of a bulk statement holds no other `$`.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

_PLACEHOLDER = re.compile(r"\$(\d+)")


class NotScriptable(Exception):
    """A value that cannot be written as a literal: send this batch with parameters."""


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"({int(value)})"
    if isinstance(value, str):
        text = str.__str__(value)  # an enum's value, not its name
        if "\x00" in text:
            raise NotScriptable
        return "'" + text.replace("'", "''") + "'"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return f"'{value.isoformat()}'"
    if isinstance(value, Decimal) and value.is_finite():
        return f"({value})"
    raise NotScriptable


@functools.lru_cache(maxsize=256)
def _split(sql: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The text around the placeholders, and each placeholder's 0-based parameter index."""
    pieces = _PLACEHOLDER.split(sql)
    return tuple(pieces[0::2]), tuple(int(n) - 1 for n in pieces[1::2])


def render(sql: str, params: tuple[Any, ...] | list[Any]) -> str:
    """One statement with its parameters written in; raises `NotScriptable`."""
    texts, indexes = _split(sql)
    out = [texts[0]]
    for text, index in zip(texts[1:], indexes, strict=True):
        out.append(literal(params[index]))
        out.append(text)
    return "".join(out)


_VALUES = re.compile(r"(INSERT INTO .+? VALUES )(\([^()]*(?:\([^()]*\)[^()]*)*\))", re.DOTALL)


# A placeholder's cast, `$3::TIMESTAMP WITH TIME ZONE` (a plain type name, nothing after it).
_CAST = re.compile(r"(\$\d+)::[A-Z][A-Z ]*(?=[,)])")


@functools.lru_cache(maxsize=256)
def _values_split(sql: str) -> tuple[str, str] | None:
    """`INSERT INTO t (…) VALUES ` and its one `(…)` group without the placeholders' casts, when
    the statement is nothing more (no ON CONFLICT, no RETURNING); else None. In an INSERT the
    values are coerced to the columns' types anyway, and the casts (SQLAlchemy's asyncpg dialect
    writes one on every placeholder) were a third of what PostgreSQL spent on such a script:
    each is a type name to parse and look up, on every value of every row."""
    match = _VALUES.fullmatch(sql)
    return (match.group(1), _CAST.sub(r"\1", match.group(2))) if match else None


def render_rows(sql: str, rows: list[tuple[Any, ...]]) -> list[str]:
    """An executemany as script statements: a plain INSERT becomes one statement of many VALUES
    rows (PostgreSQL parses, plans and starts an executor once, not once a row; in an INSERT the
    values are coerced to the columns' types as for one row), anything else one per row. Raises
    `NotScriptable`."""
    split = _values_split(sql)
    if split is None:
        return [render(sql, row) for row in rows]
    head, group = split
    return [head + ", ".join([render(group, row) for row in rows])] if rows else []


def status_count(status: str) -> int:
    """The row count of a command status (`UPDATE 3`, `INSERT 0 5`, `DELETE 0`)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


__all__ = ["NotScriptable", "literal", "render", "render_rows", "status_count"]
