"""The async engine, connection settings per backend, and migrations on startup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import msgspec
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from runapi.store.bulk import BulkStatements, sqlite_driver

# Any constant works; it only has to be the same in every gateway process sharing the database.
_MIGRATION_LOCK_ID = 727_001


def normalize_url(url: str) -> str:
    """Accept plain `sqlite:///` and `postgresql://` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # JSON columns through msgspec: the stdlib encoder was a visible share of every task and
        # ledger insert. Same JSON text (UTF-8 instead of \u escapes); Decimals stay strings.
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": _json_dumps,
            "json_deserializer": msgspec.json.decode,
        }
        if self.is_sqlite:
            # One file, many connections: WAL lets readers run beside the single writer, and a
            # busy timeout turns writer contention into a short wait instead of an error.
            kwargs["connect_args"] = {"timeout": 30}
            if ":memory:" in self.url:
                kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self.bulk = BulkStatements(self.engine.dialect)
        # SQLite has one writer. Writers of this process take turns on an asyncio lock instead of
        # meeting in SQLite's busy handler, which sleeps up to 100 ms per retry.
        self._write_lock = asyncio.Lock()
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. On SQLite it opens with BEGIN IMMEDIATE, so guarded updates take the
        write lock up front instead of failing on lock upgrade under concurrency."""
        if not self.is_sqlite:
            async with self.engine.connect() as conn:
                try:
                    yield conn
                except BaseException:
                    await conn.rollback()
                    raise
                await conn.commit()
            return
        async with self._write_lock, self.engine.connect() as conn:
            # SQLAlchemy's own transaction first (no I/O with the driver in autocommit mode), so
            # that commit() and rollback() below reach the driver even when every statement of
            # the block went to it directly (bulk statements); then the real BEGIN, one trip.
            await conn.begin()
            await sqlite_driver(conn).execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A read connection (autocommit-style: the block's reads need no transaction)."""
        async with self.engine.connect() as conn:
            yield conn

    async def migrate(self) -> None:
        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            try:
                await conn.run_sync(_upgrade_head)
                await conn.commit()
            finally:
                if not self.is_sqlite:
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                    await conn.commit()

    async def dispose(self) -> None:
        await self.engine.dispose()


def _json_dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # aiosqlite's connection wraps sqlite3; isolation_level=None hands transaction control to us
    # (BEGIN IMMEDIATE above) instead of pysqlite's implicit, deferred BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("runapi.store").joinpath("migrations")))
    return cfg


def _upgrade_head(sync_conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
