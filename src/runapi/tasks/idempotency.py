"""`Idempotency-Key`: one task per (API key, key) for 24 h (runapi-contract §2).

The fingerprint is the only trace of a request's input the gateway keeps, and only for this check.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from runapi.errors import Conflict
from runapi.store.database import Database
from runapi.store.schema import idempotency_keys
from runapi.tasks.records import utc

MAX_KEY_LENGTH = 512


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """The result of claiming a key: `owner` is True when this call must run the generation;
    otherwise `task_id` names the task of the earlier request with the same key and body."""

    owner: bool
    task_id: str


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 over the method, the path and the canonical JSON body (sorted keys, compact).
    A body that is not JSON is hashed as sent."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\n")
    digest.update(path.encode())
    digest.update(b"\n")
    digest.update(canonical)
    return digest.hexdigest()


def _reused() -> Conflict:
    return Conflict("Idempotency-Key was reused with a different request body", code="idempotency_key_reused")


class IdempotencyStore:
    """The `idempotency_keys` table. Claims are atomic across processes: insert-if-absent, then read
    the winner inside the same transaction."""

    def __init__(self, db: Database, ttl_seconds: float = 86_400.0) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_seconds)
        self._insert = (sqlite.insert if db.is_sqlite else postgresql.insert)(idempotency_keys)

    async def claim(self, api_key_id: str, key: str, fingerprint: str, task_id: str) -> Claim:
        """Insert the key for `task_id`, or return the task that holds it. Raises `Conflict`
        (code `idempotency_key_reused`) when the key is held for a different fingerprint."""
        async with self.db.begin() as conn:
            return await self.claim_in(conn, api_key_id, key, fingerprint, task_id)

    async def claim_in(
        self, conn: AsyncConnection, api_key_id: str, key: str, fingerprint: str, task_id: str
    ) -> Claim:
        """`claim` inside the caller's transaction (the task store inserts the task row with it)."""
        now = datetime.now(UTC)
        values = {
            "api_key_id": api_key_id,
            "key": key,
            "fingerprint": fingerprint,
            "task_id": task_id,
            "created_at": now,
            "expires_at": now + self.ttl,
        }
        # ON CONFLICT DO NOTHING: on PostgreSQL a concurrent uncommitted insert of the same key
        # makes this wait for it, so the read below always sees the winner.
        inserted = await conn.execute(self._insert.values(values).on_conflict_do_nothing())
        if inserted.rowcount == 1:
            return Claim(owner=True, task_id=task_id)
        where = (idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key)
        row = (
            await conn.execute(
                select(
                    idempotency_keys.c.fingerprint,
                    idempotency_keys.c.task_id,
                    idempotency_keys.c.expires_at,
                ).where(*where)
            )
        ).one()
        expires = utc(row.expires_at)
        if expires is not None and expires <= now:
            # An expired key is free again: take it over, guarded so one claimer wins.
            taken = await conn.execute(
                update(idempotency_keys)
                .where(*where, idempotency_keys.c.expires_at == row.expires_at)
                .values(values)
            )
            if taken.rowcount == 1:
                return Claim(owner=True, task_id=task_id)
            return await self.claim_in(conn, api_key_id, key, fingerprint, task_id)
        if row.fingerprint != fingerprint:
            raise _reused()
        return Claim(owner=False, task_id=row.task_id)

    async def release(self, api_key_id: str, key: str, task_id: str) -> None:
        """Free a key claimed for `task_id` whose request was then rejected before the task existed
        (400/402/429 at admission), so the client may retry with the same key (§2)."""
        async with self.db.begin() as conn:
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.api_key_id == api_key_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.task_id == task_id,
                )
            )

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete keys past their 24 h; returns how many."""
        now = now or datetime.now(UTC)
        async with self.db.begin() as conn:
            result = await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
        return int(result.rowcount or 0)
