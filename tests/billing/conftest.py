"""Billing fixtures: a fresh database per test on SQLite, and on PostgreSQL as well when
RUNAPI_TEST_POSTGRES_URL is set (a uniquely named database, dropped afterwards)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
from sqlalchemy.engine import make_url

from runapi.auth import AccountRepository
from runapi.billing import Ledger, PriceBook
from runapi.catalog import Catalog, load_catalog
from runapi.ids import new_ulid
from runapi.settings import BillingSettings
from runapi.store.database import Database
from runapi.store.schema import metadata

PG_URL = os.environ.get("RUNAPI_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if PG_URL else ["sqlite"]


def _pg_admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'billing.db'}")
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield database
        await database.dispose()
        return
    assert PG_URL is not None
    name = f"runapi_billing_{os.getpid()}_{new_ulid().lower()[-8:]}"
    admin = await asyncpg.connect(_pg_admin_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database = Database(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
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


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
async def prices(db: Database, catalog: Catalog) -> PriceBook:
    return await PriceBook.load(db, catalog)


class Clock:
    """A settable clock, so expiry and month boundaries are tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


LedgerFactory = Callable[..., Ledger]


@pytest.fixture
def make_ledger(db: Database, prices: PriceBook, clock: Clock) -> LedgerFactory:
    def build(**billing: object) -> Ledger:
        settings = msgspec.structs.replace(BillingSettings(), **billing)
        return Ledger(db, prices, settings, clock=clock)

    return build


@pytest.fixture
def ledger(make_ledger: LedgerFactory) -> Ledger:
    return make_ledger()


class Account(msgspec.Struct, frozen=True):
    id: int
    created_at: datetime


NewAccount = Callable[..., Awaitable[Account]]


@pytest.fixture
def new_account(db: Database) -> NewAccount:
    repo = AccountRepository(db)

    async def create(name: str = "acct") -> Account:
        info = await repo.create(name)
        return Account(info.id, info.created_at)

    return create
