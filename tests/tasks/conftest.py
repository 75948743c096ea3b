"""Fixtures for the tasks tests: a fresh database per test on SQLite, and on PostgreSQL as well
when RUNAPI_TEST_POSTGRES_URL is set (a uniquely named database, dropped afterwards)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runapi.auth import AccountRepository, KeyRepository
from runapi.settings import Settings, TaskSettings, WebhookSettings
from runapi.store.database import Database
from runapi.tasks.store import TaskStore


def make_settings(**tasks: object) -> Settings:
    return Settings(
        tasks=TaskSettings(flush_interval_ms=5.0, **tasks),  # type: ignore[arg-type]
        webhooks=WebhookSettings(
            allow_http=True, allow_private=True, retry_schedule=(0, 0.05, 0.05, 0.05), timeout_seconds=5.0
        ),
    )


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
