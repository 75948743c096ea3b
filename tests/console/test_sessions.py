"""Console sessions in memory: expiry, sign-out, revocation, bounded size."""

from __future__ import annotations

from datetime import UTC, datetime

from runapi.auth import Principal
from runapi.console.sessions import SessionStore, same_token


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(key_id: str = "key_1", account_id: int = 1) -> Principal:
    return Principal(key_id=key_id, account_id=account_id, account_created_at=datetime.now(UTC), tier=0)


def test_a_session_lives_until_its_ttl() -> None:
    clock = Ticks()
    store = SessionStore(ttl_seconds=60, clock=clock)
    session = store.open(principal())
    assert store.get(session.token) == session
    assert not session.is_admin
    clock.now += 59
    assert store.get(session.token) is not None
    clock.now += 1
    assert store.get(session.token) is None
    assert len(store) == 0


def test_tokens_are_random_and_unknown_tokens_find_nothing() -> None:
    store = SessionStore()
    a, b = store.open(principal()), store.open(None)
    assert a.token != b.token
    assert a.csrf != b.csrf
    assert a.token != a.csrf
    assert len(a.token) >= 40
    assert b.is_admin
    assert store.get(None) is None
    assert store.get("") is None
    assert store.get(a.token[:-1]) is None


def test_close_and_close_key() -> None:
    store = SessionStore()
    a1, a2 = store.open(principal("key_a")), store.open(principal("key_a"))
    b, admin = store.open(principal("key_b")), store.open(None)
    store.close(a1.token)
    assert store.get(a1.token) is None
    assert store.get(a2.token) is not None
    store.close_key("key_a")
    assert store.get(a2.token) is None
    assert store.get(b.token) is not None
    assert store.get(admin.token) is not None


def test_the_store_stays_bounded() -> None:
    clock = Ticks()
    store = SessionStore(ttl_seconds=10, max_sessions=20, clock=clock)
    first = [store.open(principal()) for _ in range(10)]
    clock.now += 11  # the first ten expire
    for _ in range(100):
        store.open(principal())
    assert len(store) <= 20
    assert all(store.get(s.token) is None for s in first)


def test_same_token() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abd", "abc")
    assert not same_token(None, "abc")
    assert not same_token("", "abc")
