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

from runapi.store.batch import BatchTransaction
from runapi.store.bulk import BulkStatements, driver_connection
from runapi.store.checkpoint import WAL_SIZE_LIMIT_BYTES, WRITER_AUTOCHECKPOINT_PAGES, WalCheckpointer

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
            # The pool's reset on checkin is a rollback, one trip to aiosqlite's thread for every
            # connection use; `_end_open_transaction` rolls back only one that is still in a
            # transaction (SQLAlchemy's own transactions end themselves before checkin).
            kwargs["pool_reset_on_return"] = None
            if ":memory:" in self.url:
                kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self.bulk = BulkStatements(self.engine.dialect)
        # SQLite has one writer. Writers of this process take turns on an asyncio lock instead of
        # meeting in SQLite's busy handler, which sleeps up to 100 ms per retry.
        self._write_lock = asyncio.Lock()
        # The batch writers' connections, kept checked out (see `batch`), and their turns.
        self._kept: dict[str, AsyncConnection] = {}
        self._lane_locks: dict[str, asyncio.Lock] = {}
        self._pg_scripts: dict[str, bool] = {}
        self._checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine.pool, "checkin", _end_open_transaction)

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
            await driver_connection(conn).execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def batch(self, lane: str = "default") -> AsyncIterator[BatchTransaction]:
        """The write transaction of a hot batch writer (`store/batch.py`): statements are queued
        and sent with the next read or the COMMIT. BEGIN goes out with the first send and COMMIT
        with the last, straight to the driver: on SQLite a batch without reads is one trip to
        aiosqlite's thread, on PostgreSQL one round trip when its values fit a script.

        Each `lane` (one per writer: the ledger's group commit, the task write-behind) keeps its
        own connection and takes its batches in turn; on SQLite all lanes share one connection,
        as they share the write lock. A checkout and checkin through SQLAlchemy's async pool
        cost ~40 µs of CPU per batch, and on PostgreSQL the pre-ping round trip as well."""
        key = "sqlite" if self.is_sqlite else lane
        lock = self._write_lock if self.is_sqlite else self._lane_locks.setdefault(lane, asyncio.Lock())
        async with lock:
            conn = self._kept.get(key)
            if conn is None or conn.closed or conn.invalidated:
                conn = self._kept[key] = await self._batch_connection(key)
            driver = driver_connection(conn) if self.is_sqlite else None
            pg = None if self.is_sqlite else driver_connection(conn)
            tx = BatchTransaction(conn, self.bulk, driver, pg=pg, scripts=self._pg_scripts.get(key, False))
            try:
                # The real BEGIN goes out with the first send, COMMIT with the last (on
                # PostgreSQL the connection is in autocommit, so asyncpg starts nothing itself).
                tx.add_sql("BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN")
                yield tx
                tx.add_sql("COMMIT")
                await tx.flush()
                if conn.in_transaction():
                    # Only SQLAlchemy's bookkeeping after `run` (its autobegin): the COMMIT above
                    # ended the real transaction, so this is a no-op at the driver.
                    await conn.commit()
            except BaseException:
                # End the transaction before the next batch. Nothing reached the database if
                # nothing was sent; the rollback is a no-op after COMMIT and queues behind a
                # statement still running in SQLite's thread.
                try:
                    if tx.sent_anything:
                        if driver is not None:
                            await driver.rollback()
                        elif pg is not None:
                            await pg.execute("ROLLBACK")
                    if conn.in_transaction():
                        await conn.rollback()
                except Exception:
                    self._kept.pop(key, None)  # unusable: the next batch connects afresh
                    await conn.invalidate()
                raise

    async def _batch_connection(self, key: str) -> AsyncConnection:
        conn = await self.engine.connect()
        if not self.is_sqlite:
            # Transactions by hand (BEGIN and COMMIT ride along with the batch's statements),
            # and literals in scripts only where quotes are the only escape.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            setting = await driver_connection(conn).fetchval("SHOW standard_conforming_strings")
            self._pg_scripts[key] = setting == "on"
        return conn

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

    def start_checkpoints(self) -> None:
        """SQLite file databases: WAL checkpoints on a background thread (`store/checkpoint.py`)
        from now until `dispose`. The server calls this; short CLI runs need not."""
        path = make_url(self.url).database
        if not self.is_sqlite or not path or path == ":memory:" or self._checkpointer is not None:
            return
        self._checkpointer = WalCheckpointer(path)
        self._checkpointer.start()

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await asyncio.to_thread(checkpointer.stop)
        kept, self._kept = self._kept, {}
        for conn in kept.values():
            await conn.close()
        await self.engine.dispose()


def _end_open_transaction(dbapi_conn: Any, _record: Any) -> None:
    """SQLite checkin: roll back only a connection that still holds a transaction (reading the
    flag is no trip; the adapter's rollback is, and it is rare)."""
    if dbapi_conn is not None and dbapi_conn._connection._conn.in_transaction:
        dbapi_conn.rollback()


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
    # Checkpoints belong to `WalCheckpointer`'s thread; a writer's own only past ~64 MB of WAL.
    cur.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES}")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cur.close()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("runapi.store").joinpath("migrations")))
    return cfg


def _upgrade_head(sync_conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
