"""API-key authentication on both databases: a burst of requests on a cold cache sends one query,
a wrong key fails every waiter, and a waiter that leaves does not cancel the others' answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from runapi.auth import AccountRepository, KeyRepository
from runapi.errors import AuthenticationFailed
from runapi.store.database import Database


class KeyQueries:
    """Counts the statements that read `api_keys` (the authentication lookup)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            self.count += 1


async def test_a_burst_on_a_cold_cache_sends_one_query(db: Database) -> None:
    account = await AccountRepository(db).create("burst")
    keys = KeyRepository(db, cache_seconds=5.0)
    secret = (await keys.create(account.id)).secret
    queries = KeyQueries(db)

    principals = await asyncio.gather(*(keys.authenticate(secret) for _ in range(50)))

    assert {p.account_id for p in principals} == {account.id}
    assert queries.count == 1
    await keys.authenticate(secret)  # cached now
    assert queries.count == 1


async def test_a_wrong_key_fails_every_waiter_and_is_asked_again_next_time(db: Database) -> None:
    keys = KeyRepository(db, cache_seconds=5.0)
    queries = KeyQueries(db)
    outcomes = await asyncio.gather(
        *(keys.authenticate("sk-ra-not-a-key") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, AuthenticationFailed) for o in outcomes)
    assert queries.count == 1
    with pytest.raises(AuthenticationFailed):
        await keys.authenticate("sk-ra-not-a-key")
    assert queries.count == 2  # failures are not cached


async def test_a_waiter_that_leaves_does_not_cancel_the_lookup(db: Database) -> None:
    account = await AccountRepository(db).create("leaver")
    keys = KeyRepository(db, cache_seconds=0)  # no cache: every call is a lookup
    secret = (await keys.create(account.id)).secret
    leaver = asyncio.ensure_future(keys.authenticate(secret))
    stayer = asyncio.ensure_future(keys.authenticate(secret))
    await asyncio.sleep(0)  # both are waiting on the same lookup
    leaver.cancel()
    principal = await stayer
    assert principal.account_id == account.id
    assert leaver.cancelled()
