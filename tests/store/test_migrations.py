"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from runapi.store.database import Database
from runapi.store.schema import metadata
from tests.databases import DATABASES, fresh_database


def _diff(sync_conn: Connection) -> list[Any]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("backend", DATABASES)
async def test_migrations_match_the_declared_schema(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, tmp_path, "migrations") as created:
        # `fresh_database` builds tables with create_all; start over empty and migrate instead.
        url = created.url
        async with created.engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        database = Database(url)
        try:
            await database.migrate()
            await database.migrate()  # idempotent: a second start changes nothing
            async with database.engine.connect() as conn:
                diff = await conn.run_sync(_diff)
        finally:
            await database.dispose()
    assert diff == [], f"schema.py and the migrations disagree; run tools/new_migration.py: {diff}"
