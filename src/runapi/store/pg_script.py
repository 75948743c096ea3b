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
        return _str_literal(str.__str__(value))  # an enum's value, not its name
    if isinstance(value, datetime):
        return _datetime_literal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return f"({value})"
    raise NotScriptable


def _str_literal(value: str) -> str:
    if "\x00" in value:
        raise NotScriptable
    return "'" + value.replace("'", "''") + "'"


# A batch writes the same `now` in every row (and two columns of some): its text is kept, as one
# (value, text) pair replaced whole, so that no reader can pair a value with another's text.
_last_datetime: tuple[datetime | None, str] = (None, "")


def _datetime_literal(value: datetime) -> str:
    global _last_datetime
    seen, text = _last_datetime
    if value is seen:
        return text
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    text = f"'{aware.isoformat()}'"
    _last_datetime = (value, text)
    return text


# The exact types of nearly every value, straight to their rule (subclasses, such as enums, and
# the rest go through `literal`).
_BY_TYPE: dict[type, Any] = {
    str: _str_literal,
    int: lambda value: f"({value})",
    type(None): lambda _: "NULL",
    bool: lambda value: "TRUE" if value else "FALSE",
    datetime: _datetime_literal,
}


@functools.lru_cache(maxsize=256)
def _template(sql: str) -> str:
    """The statement as a `str.format` template: `$N` becomes `{N-1}`, other braces are doubled.
    One C call then writes a row's literals in (a loop over the pieces cost more than the
    literals themselves)."""
    escaped = sql.replace("{", "{{").replace("}", "}}")
    return _PLACEHOLDER.sub(lambda m: "{" + str(int(m.group(1)) - 1) + "}", escaped)


def render(sql: str, params: tuple[Any, ...] | list[Any]) -> str:
    """One statement with its parameters written in; raises `NotScriptable`."""
    by_type = _BY_TYPE
    return _template(sql).format(*[by_type.get(type(value), literal)(value) for value in params])


_VALUES = re.compile(r"(INSERT INTO .+? VALUES )(\([^()]*(?:\([^()]*\)[^()]*)*\))", re.DOTALL)


# A placeholder's cast, `$3::TIMESTAMP WITH TIME ZONE` (a plain type name, nothing after it).
_CAST = re.compile(r"(\$\d+)::[A-Z][A-Z ]*(?=[,)])")


@functools.lru_cache(maxsize=256)
def _values_split(sql: str) -> tuple[str, str] | None:
    """`INSERT INTO t (…) VALUES ` and its one `(…)` group without the placeholders' casts, when
    the statement is nothing more (no ON CONFLICT, no RETURNING); else None. In an INSERT the
    values are coerced to the columns' types anyway, and the casts (SQLAlchemy's asyncpg dialect
    writes one on every placeholder) were a third to a half of what PostgreSQL spent on such a
    script (410-560 against 260-280 µs for 30 rows): each is a type name to parse and look up, on
    every value of every row."""
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
