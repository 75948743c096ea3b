"""PostgreSQL batches as simple-query scripts (store/pg_script.py): every value kind written as a
literal reads back exactly as given, quotes and comment markers stay data, values that cannot be
literals go parameterized, and a batch costs one round trip (plus COMMIT)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg
import pytest
from sqlalchemy import bindparam, insert, select, update

from runapi.store.batch import CheckFailed
from runapi.store.bulk import driver_connection
from runapi.store.database import Database
from runapi.store.pg_script import NotScriptable, literal, render, render_rows, status_count
from runapi.store.schema import tasks

from .rows import task_row

INSERT = insert(tasks)
SET_MODEL = update(tasks).where(tasks.c.id == bindparam("b_id")).values(model=bindparam("b_model"))


class Kind(StrEnum):
    HOLD = "hold"


TRICKY = [
    "it's",
    "''",
    "back\\slash \\' and \\\\",
    "x'); DELETE FROM tasks; --",
    "$1 $$ $2::text",
    "/* not a comment */ -- nor this",
    "naïve ünïcödé 😀",
    "",
]


def test_literals() -> None:
    assert literal(None) == "NULL"
    assert literal(True) == "TRUE"
    assert literal(-5) == "(-5)"  # never `x --5`, which would start a comment
    assert literal(Decimal("-1.50")) == "(-1.50)"
    assert literal("it's") == "'it''s'"
    assert literal(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "'2026-01-02T03:04:05.000006+00:00'"
    assert literal(datetime(2026, 1, 2)) == "'2026-01-02T00:00:00+00:00'"  # naive: UTC, as asyncpg
    assert literal(Kind.HOLD) == "'hold'"
    for value in ("a\x00b", b"bytes", 1.5, Decimal("NaN"), date(2026, 1, 2)):
        with pytest.raises(NotScriptable):
            literal(value)
        with pytest.raises(NotScriptable):  # the same through a statement (its own fast paths)
            render("SELECT $1", (value,))


def test_render_writes_each_value_as_literal_does() -> None:
    now = datetime(2026, 11, 26, 9, 5, 7, 1234, tzinfo=timezone(timedelta(hours=-5)))
    values = [
        *TRICKY,
        None,
        True,
        False,
        0,
        -7,
        2**40,
        Decimal("2.5"),
        Kind.HOLD,
        now,
        now,
        datetime(2026, 1, 2),
    ]
    sql = "SELECT " + ", ".join(f"${i}::TEXT" for i in range(1, len(values) + 1))
    assert render(sql, values) == "SELECT " + ", ".join(f"{literal(v)}::TEXT" for v in values)
    assert render("SELECT '{}', $1", (5,)) == "SELECT '{}', (5)"  # braces of the SQL stay as they are


def test_render_places_every_parameter_once_and_in_order() -> None:
    params = tuple(range(1, 12))
    sql = "UPDATE t SET a = $1, k = $11, b = $10 WHERE c = $2::INTEGER"
    assert render(sql, params) == "UPDATE t SET a = (1), k = (11), b = (10) WHERE c = (2)::INTEGER"
    assert status_count("UPDATE 3") == 3
    assert status_count("INSERT 0 5") == 5
    assert status_count("BEGIN") == 0


def test_a_plain_insert_of_many_rows_is_one_statement_without_casts() -> None:
    sql = "INSERT INTO t (a, b, c) VALUES ($1::VARCHAR, coalesce($2, 0), $3::TIMESTAMP WITH TIME ZONE)"
    at = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    assert render_rows(sql, [("x", 1, at), ("it's", None, None)]) == [
        "INSERT INTO t (a, b, c) VALUES ('x', coalesce((1), 0), '2026-11-26T07:00:00+00:00'), "
        "('it''s', coalesce(NULL, 0), NULL)"
    ]
    assert render_rows(sql, [("x", 1, None)]) == [
        "INSERT INTO t (a, b, c) VALUES ('x', coalesce((1), 0), NULL)"
    ]
    assert render_rows(sql, []) == []
    # Anything after the VALUES group (a conflict clause, RETURNING) keeps one statement a row,
    # casts and all; so does a group nested deeper than the hot statements need (not parsed).
    deeper = "INSERT INTO t (a, b) VALUES ($1, coalesce($2, (0)))"
    rows = [("x", 1, at), ("y", 2, at)]
    for statement in (sql + " ON CONFLICT DO NOTHING", sql + " RETURNING t.a", deeper):
        assert render_rows(statement, rows) == [render(statement, row) for row in rows]


def _needs_postgres(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("scripts are PostgreSQL's")


async def test_every_value_kind_reads_back_as_given(db: Database) -> None:
    _needs_postgres(db)
    zone = timezone(timedelta(hours=-5))
    rows = [
        task_row(
            f"t{i}",
            model=text,
            error=text,
            client_request_id=None if i % 2 else text,
            response_headers={"x-note": text, "n": -i},
            webhook_events_filter=[text, "completed"],
            cost_micros=-12_345 * i,
            billed=bool(i % 2),
            completed_at=datetime(2026, 11, 26, 7, 0, i, 999_999, tzinfo=zone),
        )
        for i, text in enumerate(TRICKY)
    ]
    async with db.batch() as tx:
        tx.add(INSERT, rows)
    async with db.connect() as conn:
        got = {r.id: r for r in await conn.execute(select(tasks).order_by(tasks.c.id))}
    assert len(got) == len(TRICKY)
    for i, text in enumerate(TRICKY):
        row = got[f"t{i}"]
        assert row.model == row.error == text
        assert row.client_request_id == (None if i % 2 else text)
        assert row.response_headers == {"x-note": text, "n": -i}
        assert row.webhook_events_filter == [text, "completed"]
        assert row.cost_micros == -12_345 * i
        assert row.billed is bool(i % 2)
        assert row.completed_at == datetime(2026, 11, 26, 7, 0, i, 999_999, tzinfo=zone)


class Trips:
    """Counts the asyncpg calls on the connection of the batch lane `trips`: each is a round trip."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db = db
        self.monkeypatch = monkeypatch
        self.count = 0
        self.scripts: list[str] = []

    async def __aenter__(self) -> Trips:
        async with self.db.batch("trips") as tx:  # connect the lane first
            tx.add_sql("SELECT 1")
        mine = driver_connection(self.db._kept["trips"])
        for name in ("execute", "executemany", "fetch"):
            self.monkeypatch.setattr(
                asyncpg.Connection, name, self._counted(mine, getattr(asyncpg.Connection, name))
            )
        return self

    def _counted(self, mine: Any, original: Any) -> Any:
        async def counted(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if conn is mine:
                self.count += 1
                self.scripts.append(str(args[0]))
            return await original(conn, *args, **kwargs)

        return counted

    async def __aexit__(self, *exc: object) -> None:
        self.monkeypatch.undo()


async def test_a_batch_with_a_row_count_read_takes_two_round_trips(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_postgres(db)
    async with Trips(db, monkeypatch) as trips, db.batch("trips") as tx:
        tx.add(INSERT, [task_row("t1"), task_row("t2")])
        changed = await tx.execute_one(SET_MODEL, {"b_id": "t1", "b_model": "MiniMax-M3"})
        tx.add(SET_MODEL, [{"b_id": "t2", "b_model": "MiniMax-M2.5"}])
    assert changed == 1
    assert trips.count == 2  # BEGIN, both INSERTs and the UPDATE; then the last UPDATE and COMMIT
    assert trips.scripts[0].startswith("BEGIN;")
    assert trips.scripts[0].count("INSERT INTO tasks") == 1  # the two rows in one statement
    assert trips.scripts[1].endswith("COMMIT")
    async with db.connect() as conn:
        models = dict((await conn.execute(select(tasks.c.id, tasks.c.model))).all())
    assert models == {"t1": "MiniMax-M3", "t2": "MiniMax-M2.5"}


async def test_a_large_batch_goes_parameterized(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 64 rows a prepared executemany (pipelined by asyncpg) is cheaper than a script."""
    _needs_postgres(db)
    async with Trips(db, monkeypatch) as trips, db.batch("trips") as tx:
        tx.add(INSERT, [task_row(f"t{i:03d}") for i in range(80)])
    assert trips.count == 3  # BEGIN, one executemany, COMMIT
    assert trips.scripts[0] == "BEGIN"
    async with db.connect() as conn:
        assert len((await conn.execute(select(tasks.c.id))).all()) == 80


async def test_a_failing_script_undoes_the_batch(db: Database) -> None:
    _needs_postgres(db)
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t0")])
    with pytest.raises(Exception, match="duplicate key"):
        async with db.batch() as tx:
            tx.add(INSERT, [task_row("t1"), task_row("t0")])
    async with db.connect() as conn:
        ids = [r.id for r in await conn.execute(select(tasks.c.id))]
    assert ids == ["t0"]
    async with db.batch() as tx:  # the connection is clean again
        tx.add(INSERT, [task_row("t1")])
    async with db.connect() as conn:
        assert sorted(r.id for r in await conn.execute(select(tasks.c.id))) == ["t0", "t1"]


@pytest.mark.parametrize(
    ("rows", "scripts", "trips_expected"),
    [
        pytest.param(1, True, 1, id="script"),
        # The 80-row executemany goes alone; BEGIN and the check, and COMMIT, still as scripts.
        pytest.param(80, True, 3, id="large"),
        # Literals unsafe (standard_conforming_strings off): BEGIN, UPDATE, executemany, COMMIT.
        pytest.param(1, False, 4, id="parameterized"),
    ],
)
async def test_a_checked_update_rides_with_the_batch_and_a_lost_bet_undoes_it(
    db: Database, monkeypatch: pytest.MonkeyPatch, rows: int, scripts: bool, trips_expected: int
) -> None:
    """A script checks the row count in SQL (an error stops it); without scripts the statements go
    one by one and the count is read. Either way a lost bet raises `CheckFailed` and undoes the
    batch."""
    _needs_postgres(db)
    async with db.batch() as tx:
        tx.add(INSERT, [task_row("t0")])
    async with Trips(db, monkeypatch) as trips:
        db._pg_scripts["trips"] = scripts
        async with db.batch("trips") as tx:
            tx.add_checked(SET_MODEL, {"b_id": "t0", "b_model": "won"})
            tx.add(INSERT, [task_row(f"a{i:03d}") for i in range(rows)])
    assert trips.count == trips_expected

    async def lost_bet() -> None:
        async with db.batch("trips") as tx:
            tx.add(INSERT, [task_row(f"b{i:03d}") for i in range(rows)])
            tx.add_checked(SET_MODEL, {"b_id": "t0", "b_model": "lost"}, changes=2)

    with pytest.raises(CheckFailed, match="1 rows changed, not 2"):
        await lost_bet()
    async with db.connect() as conn:
        found = dict((await conn.execute(select(tasks.c.id, tasks.c.model))).all())
    assert len(found) == 1 + rows
    assert found["t0"] == "won"
    async with db.batch("trips") as tx:  # the lane's connection is clean again
        tx.add(INSERT, [task_row("c0")])
