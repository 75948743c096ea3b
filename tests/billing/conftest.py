"""Billing fixtures: a fresh database per test on SQLite, and on PostgreSQL as well when
RUNAPI_TEST_POSTGRES_URL is set (a uniquely named database, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from runapi.auth import AccountRepository
from runapi.billing import Ledger, PriceBook
from runapi.catalog import Catalog, load_catalog
from runapi.settings import BillingSettings
from runapi.store.database import Database


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
