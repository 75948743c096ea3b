"""Console sign-in sessions, kept in the database so that every gateway process knows them.

With `runapi serve --workers N` the workers share one listening socket and any of them may answer
the next page; sessions held in one process's memory signed people out at random. The cookie
carries a random token, never the API key: the key was checked once at sign-in and the row holds
the principal it resolved to. The database keeps only the token's SHA-256, so a copy of the table
opens no session. Sessions end at `ttl_seconds`, at sign-out, or when their key is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import delete, func, insert, select

from runapi.auth import Principal
from runapi.store.database import Database
from runapi.store.schema import console_sessions

__all__ = ["ConsoleSession", "SessionStore", "new_token", "same_token"]

DEFAULT_TTL_SECONDS = 12 * 3600.0
# Sign-ins kept per key (and for the operator): the oldest go first, so signing in in a loop
# cannot grow the table without bound.
DEFAULT_MAX_PER_KEY = 100


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so a token cannot be guessed byte by byte from timings."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    csrf: str  # sent back in every form; a POST without it is refused
    principal: Principal | None  # None: the operator, signed in with the admin key
    expires_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.principal is None


class SessionStore:
    def __init__(
        self,
        db: Database,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_per_key: int = DEFAULT_MAX_PER_KEY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.ttl_seconds = ttl_seconds
        self.max_per_key = max_per_key
        self._clock = clock

    async def open(self, principal: Principal | None) -> ConsoleSession:
        """A new session for a principal (None: the operator)."""
        now = self._clock()
        session = ConsoleSession(
            token=new_token(),
            csrf=new_token(),
            principal=principal,
            expires_at=now + timedelta(seconds=self.ttl_seconds),
        )
        key_id = principal.key_id if principal is not None else None
        s = console_sessions.c
        async with self.db.begin() as conn:
            # Sign-in is rare: the expired rows go here, not on a timer.
            await conn.execute(delete(console_sessions).where(s.expires_at <= now))
            await conn.execute(
                insert(console_sessions).values(
                    token_hash=_digest(session.token),
                    csrf=session.csrf,
                    key_id=key_id,
                    principal=msgspec.to_builtins(principal) if principal is not None else None,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
            same_key = s.key_id.is_(None) if key_id is None else s.key_id == key_id
            kept = (
                select(s.token_hash)
                .where(same_key)
                .order_by(s.created_at.desc(), s.token_hash)
                .limit(self.max_per_key)
            )
            await conn.execute(delete(console_sessions).where(same_key, s.token_hash.not_in(kept)))
        return session

    async def get(self, token: str | None) -> ConsoleSession | None:
        if not token or len(token) > 128:
            return None
        s = console_sessions.c
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(s.csrf, s.principal, s.expires_at).where(s.token_hash == _digest(token))
                )
            ).first()
        if row is None:
            return None
        expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
        if expires_at <= self._clock():
            await self.close(token)
            return None
        principal = msgspec.convert(row.principal, Principal, strict=False) if row.principal else None
        return ConsoleSession(token=token, csrf=row.csrf, principal=principal, expires_at=expires_at)

    async def close(self, token: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.token_hash == _digest(token))
            )

    async def close_key(self, key_id: str) -> None:
        """End every session opened with this key (it was revoked)."""
        async with self.db.begin() as conn:
            await conn.execute(delete(console_sessions).where(console_sessions.c.key_id == key_id))

    async def count(self) -> int:
        async with self.db.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(console_sessions))).scalar_one()
        return int(total)
