"""Console sessions in the database: shared by every process, expiry, sign-out, revocation,
bounded per key, and no usable token at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from runapi.auth import Principal
from runapi.console.sessions import SessionStore, same_token
from runapi.store.database import Database
from runapi.store.schema import console_sessions


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def principal(key_id: str = "key_1", account_id: int = 1) -> Principal:
    return Principal(
        key_id=key_id,
        account_id=account_id,
        account_created_at=datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC),
        tier=2,
        limit_overrides={"standard": {"rpm": 5}},
    )


async def rows(db: Database) -> list[tuple[str, ...]]:
    async with db.connect() as conn:
        return [tuple(map(str, r)) for r in (await conn.execute(select(console_sessions))).all()]


async def test_a_session_lives_until_its_ttl(db: Database) -> None:
    clock = Clock()
    store = SessionStore(db, ttl_seconds=60, clock=clock)
    session = await store.open(principal())
    assert await store.get(session.token) == session
    assert not session.is_admin
    clock.now += timedelta(seconds=59)
    assert await store.get(session.token) is not None
    clock.now += timedelta(seconds=1)
    assert await store.get(session.token) is None
    assert await store.count() == 0  # an expired session found is removed


async def test_another_process_on_the_same_database_knows_the_session(db: Database) -> None:
    # Two stores stand for two gateway workers: a session opened on one is valid on the other,
    # principal and CSRF token included, and a sign-out on either ends it for both.
    url = db.engine.url.render_as_string(hide_password=False)
    other_db = Database(url)
    try:
        here, there = SessionStore(db), SessionStore(other_db)
        opened = await here.open(principal())
        seen = await there.get(opened.token)
        assert seen == opened
        admin = await there.open(None)
        assert (await here.get(admin.token)) == admin
        await there.close(opened.token)
        assert await here.get(opened.token) is None
        assert await here.get(admin.token) is not None
    finally:
        await other_db.dispose()


async def test_tokens_are_random_and_unknown_tokens_find_nothing(db: Database) -> None:
    store = SessionStore(db)
    a, b = await store.open(principal()), await store.open(None)
    assert a.token != b.token
    assert a.csrf != b.csrf
    assert a.token != a.csrf
    assert len(a.token) >= 40
    assert b.is_admin
    assert await store.get(None) is None
    assert await store.get("") is None
    assert await store.get(a.token[:-1]) is None
    assert await store.get("x" * 10_000) is None


async def test_the_database_holds_no_usable_token(db: Database) -> None:
    store = SessionStore(db)
    session = await store.open(principal())
    stored = " ".join(" ".join(r) for r in await rows(db))
    assert session.token not in stored  # only its SHA-256: a copy of the table opens nothing
    assert session.csrf in stored  # (the CSRF token alone signs nobody in)


async def test_close_and_close_key(db: Database) -> None:
    store = SessionStore(db)
    a1, a2 = await store.open(principal("key_a")), await store.open(principal("key_a"))
    b, admin = await store.open(principal("key_b")), await store.open(None)
    await store.close(a1.token)
    assert await store.get(a1.token) is None
    assert await store.get(a2.token) is not None
    await store.close_key("key_a")
    assert await store.get(a2.token) is None
    assert await store.get(b.token) is not None
    assert await store.get(admin.token) is not None


async def test_sessions_stay_bounded_per_key_and_expired_ones_go(db: Database) -> None:
    clock = Clock()
    store = SessionStore(db, ttl_seconds=10, max_per_key=5, clock=clock)
    old = [await store.open(principal("key_old")) for _ in range(3)]
    clock.now += timedelta(seconds=11)  # those three expire; the next sign-in removes them
    loop = []
    for _ in range(12):  # someone signing in in a loop keeps only the newest five
        clock.now += timedelta(milliseconds=1)
        loop.append(await store.open(principal("key_a")))
    operator = [await store.open(None) for _ in range(7)]
    assert await store.count() == 5 + 5
    assert [await store.get(s.token) is not None for s in loop] == [False] * 7 + [True] * 5
    assert [await store.get(s.token) for s in old] == [None] * 3
    assert sum([await store.get(s.token) is not None for s in operator]) == 5


def test_same_token() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abd", "abc")
    assert not same_token(None, "abc")
    assert not same_token("", "abc")
