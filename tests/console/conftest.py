"""Console fixtures: a real database (SQLite always, PostgreSQL too when RUNAPI_TEST_POSTGRES_URL is
set), a real ledger and real accounts and keys, and the console served by a real aiohttp server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

from runapi import console
from runapi.api.account import LEDGER_EXTRA
from runapi.auth import AccountRepository, KeyRepository
from runapi.billing import Ledger, PriceBook
from runapi.canonical import Usage
from runapi.catalog import Catalog, load_catalog
from runapi.ids import new_ulid
from runapi.providers.registry import ProviderRegistry
from runapi.services import SERVICES, Services
from runapi.settings import BillingSettings, Settings
from runapi.store.database import Database
from runapi.store.schema import tasks

ADMIN_KEY = "console-test-admin-key"
_ULID = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


def ulid_at(at: datetime) -> str:
    """A ULID minted at `at` (tasks in the past for the per-day charts)."""
    value = (int(at.timestamp() * 1000) << 80) | int(new_ulid()[10:].translate(_DECODE), 32)
    chars = []
    for _ in range(26):
        chars.append(_ULID[value & 31])
        value >>= 5
    return "".join(reversed(chars))


# Crockford base32 digits → the digits Python's int(..., 32) reads.
_DECODE = str.maketrans(_ULID, "0123456789abcdefghijklmnopqrstuv")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Account:
    id: int
    key_id: str
    secret: str


class Console:
    """The console app over a real server, with helpers that write real rows."""

    def __init__(self, server: TestServer, db: Database, ledger: Ledger, clock: Clock, catalog: Catalog):
        self.server, self.db, self.ledger, self.clock, self.catalog = server, db, ledger, clock, catalog
        self.clients: list[TestClient[Any, Any]] = []
        self._minted = 0

    async def client(self) -> TestClient[Any, Any]:
        """A browser of its own (its own cookie jar)."""
        client: TestClient[Any, Any] = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return client

    async def account(self, name: str = "Ada", usd: int = 10) -> Account:
        info = await AccountRepository(self.db).create(name, f"{new_ulid().lower()}@example.com")
        key = await KeyRepository(self.db).create(info.id, name="console test")
        if usd:
            await self.ledger.topup(info.id, usd * 1_000_000, "pay_" + new_ulid())
        return Account(info.id, key.id, key.secret)

    async def task(
        self,
        account: Account,
        *,
        model: str = "MiniMax-M2.7",
        days_ago: int = 0,
        input_tokens: int = 1000,
        output_tokens: int = 200,
        status: str = "completed",
        body: str | None = None,
    ) -> str:
        """A settled generation: a real hold and charge in the ledger and its task row."""
        entry = self.catalog.resolve(model)
        # One millisecond apart, so task ids (ULIDs of `at`) sort in creation order.
        self._minted += 1
        at = self.clock.now - timedelta(days=days_ago) + timedelta(milliseconds=self._minted)
        task_id = "task_" + ulid_at(at)
        saved = self.clock.now
        self.clock.now = at
        try:
            admission = await self.ledger.admit(
                account_id=account.id,
                account_created_at=at - timedelta(days=365),
                task_id=task_id,
                model=entry,
                est_input_tokens=input_tokens,
                max_output_tokens=output_tokens,
            )
            usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
            charge = await self.ledger.settle(admission, usage, entry)
        finally:
            self.clock.now = saved
        ulid = task_id.removeprefix("task_")
        async with self.db.begin() as conn:
            await conn.execute(
                insert(tasks).values(
                    id=task_id,
                    account_id=account.id,
                    api_key_id=account.key_id,
                    model=entry.id,
                    endpoint="chat.completions",
                    surface_id="chatcmpl-" + ulid,
                    status=status,
                    streamed=False,
                    mode="sync",
                    created_at=at,
                    completed_at=at,
                    finish_reason="stop",
                    input_tokens=input_tokens,
                    cached_input_tokens=0,
                    cache_write_tokens=0,
                    output_tokens=output_tokens,
                    reasoning_tokens=0,
                    usage_source="upstream",
                    cost_micros=charge.cost_micros,
                    billed=charge.billed,
                    free_call=False,
                    response_status=200 if body is not None else None,
                    response_headers={} if body is not None else None,
                    response_body=body,
                    data_removed=False,
                    cancel_requested=False,
                )
            )
        return task_id

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


async def sign_in(client: TestClient[Any, Any], key: str) -> Any:
    """Fill in the sign-in form as a browser does: read its token, post it with the key."""
    form = await client.get("/console/login")
    assert form.status == 200
    token = login_token(await form.text())
    return await client.post("/console/login", data={"login_token": token, "key": key})


def login_token(html: str) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def build_services(db: Database, catalog: Catalog, ledger: Ledger | None) -> Services:
    return Services(
        settings=Settings(admin_key=ADMIN_KEY),
        db=db,
        catalog=catalog,
        accounts=AccountRepository(db),
        keys=KeyRepository(db, cache_seconds=0),
        providers=ProviderRegistry({}),
        extras={LEDGER_EXTRA: ledger} if ledger is not None else {},
    )


@pytest.fixture
async def app(db: Database, catalog: Catalog) -> AsyncIterator[Console]:
    clock = Clock()
    # Paid calls from the first request: these tests are about what the console shows.
    settings = msgspec.structs.replace(BillingSettings(), free_first_call=False, paid_only_after_free=False)
    ledger = Ledger(db, await PriceBook.load(db, catalog), settings, clock=clock)
    application = web.Application()
    application[SERVICES] = build_services(db, catalog, ledger)
    application.add_routes(console.routes())
    server = TestServer(application)
    await server.start_server()
    harness = Console(server, db, ledger, clock, catalog)
    try:
        yield harness
    finally:
        await harness.close()
        await server.close()
