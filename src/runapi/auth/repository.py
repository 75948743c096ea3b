"""Accounts and keys in the database, with a short-lived in-process cache for the hot path."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import msgspec
from sqlalchemy import insert, select, update

from runapi.auth.keys import (
    Principal,
    generate_key_secret,
    generate_webhook_secret,
    hash_key,
    key_hint,
    valid_imported_secret,
)
from runapi.errors import AuthenticationFailed, InvalidRequest, NotFound
from runapi.ids import new_ulid
from runapi.store.database import Database
from runapi.store.schema import accounts, api_keys


class AccountInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    email: str | None
    created_at: datetime
    tier: int


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: int
    name: str | None
    hint: str
    created_at: datetime
    revoked_at: datetime | None


class CreatedKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: int
    secret: str  # shown once


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class AccountRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, email: str | None = None) -> AccountInfo:
        now = datetime.now(UTC)
        async with self.db.begin() as conn:
            result = await conn.execute(
                insert(accounts)
                .values(
                    name=name,
                    email=email,
                    created_at=now,
                    balance_micros=0,
                    held_micros=0,
                    bonus_micros=0,
                    paid_total_micros=0,
                    spent_total_micros=0,
                    tier=0,
                    tier_pinned=False,
                    postpaid=False,
                )
                .returning(accounts.c.id)
            )
            account_id = int(result.scalar_one())
        return AccountInfo(id=account_id, name=name, email=email, created_at=now, tier=0)

    async def get(self, account_id: int) -> AccountInfo:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
        if row is None:
            raise NotFound(f"No account {account_id}.")
        created = _utc(row.created_at)
        assert created is not None
        return AccountInfo(id=row.id, name=row.name, email=row.email, created_at=created, tier=row.tier)

    async def count(self) -> int:
        async with self.db.connect() as conn:
            return len((await conn.execute(select(accounts.c.id).limit(1))).all())


class KeyRepository:
    def __init__(self, db: Database, cache_seconds: float = 5.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        # One database lookup per key at a time: a burst of requests on a cold (or just expired)
        # cache waits for the same answer instead of sending the same query a thousand times.
        self._lookups: dict[str, asyncio.Task[Principal]] = {}

    async def create(self, account_id: int, name: str | None = None, secret: str | None = None) -> CreatedKey:
        if secret is not None and not valid_imported_secret(secret):
            raise InvalidRequest("An imported key must be 8 or more printable characters, no spaces.")
        secret = secret or generate_key_secret()
        key_id = "key_" + new_ulid()
        async with self.db.begin() as conn:
            found = (await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))).first()
            if found is None:
                raise NotFound(f"No account {account_id}.")
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    account_id=account_id,
                    name=name,
                    key_hash=hash_key(secret),
                    key_hint=key_hint(secret),
                    created_at=datetime.now(UTC),
                    webhook_secret=generate_webhook_secret(),
                )
            )
        return CreatedKey(id=key_id, account_id=account_id, secret=secret)

    async def revoke(self, key_id: str) -> None:
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount == 0:
                exists = (await conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id))).first()
                if exists is None:
                    raise NotFound(f"No key {key_id}.")
        self._cache = {h: v for h, v in self._cache.items() if v[1].key_id != key_id}

    async def list(self, account_id: int | None = None) -> list[KeyInfo]:
        query = select(api_keys).order_by(api_keys.c.id)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for r in rows:
            created = _utc(r.created_at)
            assert created is not None
            out.append(
                KeyInfo(
                    id=r.id,
                    account_id=r.account_id,
                    name=r.name,
                    hint=r.key_hint,
                    created_at=created,
                    revoked_at=_utc(r.revoked_at),
                )
            )
        return out

    async def authenticate(self, secret: str | None) -> Principal:
        """Resolve a presented secret. Cached for `cache_seconds` so the hot path does no I/O;
        a revocation therefore takes effect within that window on other processes."""
        if not secret:
            raise AuthenticationFailed(
                "Missing API key. Send `Authorization: Bearer <key>` or `x-api-key: <key>`."
            )
        digest = hash_key(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = self._lookups[digest] = asyncio.ensure_future(self._lookup(digest))
            lookup.add_done_callback(lambda done: self._lookup_done(digest, done))
        # Shielded: a caller that goes away (its client left) must not cancel the others' answer.
        return await asyncio.shield(lookup)

    def _lookup_done(self, digest: str, done: asyncio.Task[Principal]) -> None:
        self._lookups.pop(digest, None)
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every caller left before the answer

    async def _lookup(self, digest: str) -> Principal:
        now = time.monotonic()
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.id,
                        api_keys.c.account_id,
                        api_keys.c.revoked_at,
                        api_keys.c.limit_overrides,
                        accounts.c.created_at,
                        accounts.c.tier,
                    )
                    .join(accounts, accounts.c.id == api_keys.c.account_id)
                    .where(api_keys.c.key_hash == digest)
                )
            ).first()
        if row is None or row.revoked_at is not None:
            self._cache.pop(digest, None)
            raise AuthenticationFailed("Incorrect API key provided, or the key was revoked.")
        created = _utc(row.created_at)
        assert created is not None
        principal = Principal(
            key_id=row.id,
            account_id=row.account_id,
            account_created_at=created,
            tier=row.tier,
            limit_overrides=row.limit_overrides,
        )
        if self.cache_seconds > 0:
            self._cache[digest] = (now + self.cache_seconds, principal)
        return principal

    def forget_account(self, account_id: int) -> None:
        """Drop cached principals of an account (its tier changed)."""
        self._cache = {h: v for h, v in self._cache.items() if v[1].account_id != account_id}
