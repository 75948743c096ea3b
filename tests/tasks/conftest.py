"""Fixtures for the tasks tests: a fresh database per test on SQLite, and on PostgreSQL as well
when RUNAPI_TEST_POSTGRES_URL is set (a uniquely named database, dropped afterwards)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from runapi.auth import AccountRepository, KeyRepository
from runapi.ids import new_ulid
from runapi.settings import Settings, TaskSettings, WebhookSettings
from runapi.store.database import Database
from runapi.store.schema import metadata
from runapi.tasks.store import TaskStore

PG_URL = os.environ.get("RUNAPI_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if PG_URL else ["sqlite"]


def make_settings(**tasks: object) -> Settings:
    return Settings(
        tasks=TaskSettings(flush_interval_ms=5.0, **tasks),  # type: ignore[arg-type]
        webhooks=WebhookSettings(
            allow_http=True, allow_private=True, retry_schedule=(0, 0.05, 0.05, 0.05), timeout_seconds=5.0
        ),
    )


def _pg_admin_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'tasks.db'}")
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield database
        await database.dispose()
        return
    assert PG_URL is not None
    name = "runapi_tasks_" + new_ulid().lower()
    admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()
        admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def store(db: Database, settings: Settings) -> AsyncIterator[TaskStore]:
    task_store = TaskStore(db, settings)
    await task_store.start()
    yield task_store
    await task_store.close()


class Key:
    def __init__(self, account_id: int, key_id: str) -> None:
        self.account_id = account_id
        self.key_id = key_id


async def make_key(db: Database) -> Key:
    account = await AccountRepository(db).create("tasks-test")
    created = await KeyRepository(db).create(account.id)
    return Key(account.id, created.id)
