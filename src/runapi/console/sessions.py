"""Console sign-in sessions, held in this process's memory.

The cookie carries a random token, never the API key: the key was checked once at sign-in and the
token maps to the principal it resolved to. Sessions end at `ttl_seconds`, at sign-out, or when the
process restarts (everyone signs in again, which is acceptable for an operator console). With
several gateway workers a session is only known to the worker that created it, so the console
should be served by one worker (or sticky routing).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from runapi.auth import Principal

__all__ = ["ConsoleSession", "SessionStore", "new_token", "same_token"]

DEFAULT_TTL_SECONDS = 12 * 3600.0
DEFAULT_MAX_SESSIONS = 10_000


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so a token cannot be guessed byte by byte from timings."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    csrf: str  # sent back in every form; a POST without it is refused
    principal: Principal | None  # None: the operator, signed in with the admin key
    expires_at: float  # on the store's monotonic clock

    @property
    def is_admin(self) -> bool:
        return self.principal is None


class SessionStore:
    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, ConsoleSession] = {}  # insertion order = creation order

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, principal: Principal | None) -> ConsoleSession:
        """A new session for a principal (None: the operator)."""
        if len(self._sessions) >= self.max_sessions:
            self._evict()
        session = ConsoleSession(
            token=new_token(),
            csrf=new_token(),
            principal=principal,
            expires_at=self._clock() + self.ttl_seconds,
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> ConsoleSession | None:
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[token]
            return None
        return session

    def close(self, token: str) -> None:
        self._sessions.pop(token, None)

    def close_key(self, key_id: str) -> None:
        """End every session opened with this key (it was revoked)."""
        self._sessions = {
            t: s for t, s in self._sessions.items() if s.principal is None or s.principal.key_id != key_id
        }

    def _evict(self) -> None:
        """Full: drop expired sessions, and if that is not enough, the oldest tenth (bounded memory
        even when someone signs in in a loop)."""
        now = self._clock()
        self._sessions = {t: s for t, s in self._sessions.items() if s.expires_at > now}
        if len(self._sessions) >= self.max_sessions:
            drop = max(1, self.max_sessions // 10)
            for token in list(self._sessions)[:drop]:
                del self._sessions[token]
