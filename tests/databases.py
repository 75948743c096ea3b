"""A fresh, empty database per test: SQLite always, PostgreSQL too when RUNAPI_TEST_POSTGRES_URL
is set (a uniquely named database, dropped afterwards). Shared by the storage-level suites."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from runapi.store.database import Database
from runapi.store.schema import metadata

PG_URL = os.environ.get("RUNAPI_TEST_POSTGRES_URL")
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if PG_URL else ["sqlite"]


def _pg_admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _create_all(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path, label: str) -> AsyncIterator[Database]:
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / f'{label}.db'}")
        await _create_all(database)
        try:
            yield database
        finally:
            await database.dispose()
        return
    assert PG_URL is not None
    name = f"runapi_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database = Database(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    await _create_all(database)
    try:
        yield database
    finally:
        await database.dispose()
        admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Import into a suite's conftest (`from tests.databases import db`) to use it there."""
    label = Path(str(request.fspath)).parent.name
    async with fresh_database(request.param, tmp_path, label) as database:
        yield database
