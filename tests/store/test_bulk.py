"""Bulk statements write exactly what SQLAlchemy's own executemany writes, on both databases."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, DateTime, bindparam, insert, select, update
from sqlalchemy.dialects import sqlite

from runapi.store.bulk import BulkStatement, _faster
from runapi.store.database import Database
from runapi.store.schema import tasks

from .rows import NOW, task_row


def _task(task_id: str, **extra: Any) -> dict[str, Any]:
    """With a JSON object, a JSON list, an integer and a boolean among the values."""
    values: dict[str, Any] = {
        "surface_id": "chatcmpl-1",  # the same in every row: rows are compared without their ids
        "response_headers": {"x-a": "b"},
        "webhook_events_filter": ["completed"],
        "cost_micros": 12_345,
        "billed": True,
    }
    return task_row(task_id, **{**values, **extra})


async def _rows(db: Database, ids: list[str]) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        result = await conn.execute(select(tasks).where(tasks.c.id.in_(ids)).order_by(tasks.c.id))
        return [dict(r._mapping) for r in result]


async def test_insert_matches_sqlalchemy_executemany_and_applies_column_defaults(db: Database) -> None:
    stmt = insert(tasks)
    async with db.begin() as conn:
        await conn.execute(stmt, [_task("task_a")])
    async with db.batch() as tx:
        tx.add(stmt, [_task("task_b")])
    ours, theirs = await _rows(db, ["task_b"]), await _rows(db, ["task_a"])
    assert len(ours) == len(theirs) == 1
    ours[0].pop("id"), theirs[0].pop("id")
    assert ours == theirs
    # Defaults of columns the rows left out, and JSON and datetimes round-trip.
    assert ours[0]["streamed"] is False
    assert ours[0]["mode"] == "sync"
    assert ours[0]["free_call"] is False
    assert ours[0]["response_headers"] == {"x-a": "b"}
    assert ours[0]["webhook_events_filter"] == ["completed"]
    assert ours[0]["created_at"].replace(tzinfo=UTC) == NOW


async def test_update_binds_the_statements_own_literals(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(tasks), [_task("task_a"), _task("task_b", status="completed")])
    stmt = (
        update(tasks)
        .where(tasks.c.id == bindparam("b_id"), tasks.c.status == "processing")
        .values(status=bindparam("b_status"), completed_at=bindparam("b_completed_at"))
    )
    later = NOW + timedelta(seconds=3)
    bulk = db.bulk.of(stmt)
    assert bulk.names == ("b_status", "b_completed_at", "b_id")
    async with db.batch() as tx:
        tx.add(
            stmt,
            [
                {"b_id": "task_a", "b_status": "failed", "b_completed_at": later},
                # Guarded by the literal: a completed task stays completed.
                {"b_id": "task_b", "b_status": "failed", "b_completed_at": later},
            ],
        )
    a, b = await _rows(db, ["task_a", "task_b"])
    assert (a["status"], a["completed_at"].replace(tzinfo=UTC)) == ("failed", later)
    assert (b["status"], b["completed_at"]) == ("completed", None)


async def test_a_missing_key_without_a_default_fails_instead_of_writing_null(db: Database) -> None:
    bulk = BulkStatement(insert(tasks), db.engine.dialect)
    row = _task("task_a")
    del row["model"]
    with pytest.raises(KeyError, match="model"):
        bulk.to_tuples([row])


async def test_the_same_statement_compiles_once(db: Database) -> None:
    stmt = insert(tasks)
    assert db.bulk.of(stmt) is db.bulk.of(stmt)
    assert db.bulk.of(stmt) is not db.bulk.of(insert(tasks))


def test_sqlite_timestamps_get_the_text_sqlalchemy_writes() -> None:
    dialect = sqlite.dialect()
    theirs = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    ours = _faster(theirs, dialect)
    assert ours is not theirs  # the fast path is taken on SQLite
    rng = random.Random(7)
    zones = [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    values = [
        datetime(
            rng.randint(1, 9999),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, 1, 999_999, rng.randint(0, 999_999)]),
            tzinfo=rng.choice(zones),
        )
        for _ in range(500)
    ]
    for value in values + values[:50]:  # the second time, some from the one-value cache
        assert ours(value) == theirs(value), value
    assert ours(None) is None
    assert ours(date(2026, 1, 2)) == theirs(date(2026, 1, 2))  # not a datetime: SQLAlchemy's own
    other = JSON().dialect_impl(dialect).bind_processor(dialect)  # not a datetime formatter
    assert other is not None
    assert _faster(other, dialect) is other  # no engine serializer on a bare dialect: left alone


async def test_booleans_and_json_get_the_values_sqlalchemy_binds(db: Database) -> None:
    dialect = db.engine.dialect
    for column_type, values, refused in (
        (Boolean(), [None, True, False], ["yes", 2]),
        (JSON(), [None, {}, {"k": [1, 2.5, None, "é"]}, [{"a": {"b": True}}], "text", 3], []),
    ):
        theirs = column_type.dialect_impl(dialect).bind_processor(dialect)
        ours = _faster(theirs, dialect)
        if db.is_sqlite or isinstance(column_type, JSON):
            assert ours is not theirs, column_type  # the fast path is taken here
        for value in values:
            assert ours(value) == theirs(value), value
            assert type(ours(value)) is type(theirs(value)), value
        for value in refused:  # what SQLAlchemy refuses, it still refuses
            with pytest.raises((TypeError, ValueError)):
                theirs(value)
            with pytest.raises((TypeError, ValueError)):
                ours(value)
    json_processor = JSON().dialect_impl(dialect).bind_processor(dialect)
    assert _faster(json_processor, dialect)(JSON.NULL) == json_processor(JSON.NULL)
