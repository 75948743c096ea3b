"""The console's read-only reports over a real database and real ledger entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runapi.auth import KeyRepository
from runapi.console.reports import (
    account_figures,
    key_state,
    list_accounts,
    spend_by_account,
    spend_by_model,
    spend_per_day,
    task_id_floor,
    usage_per_day,
    window,
)
from runapi.ids import new_ulid

from .conftest import Console, ulid_at


def test_window_is_the_last_n_utc_days_oldest_first() -> None:
    now = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    days = window(now, 3)
    assert [d.isoformat() for d in days] == ["2026-02-28", "2026-03-01", "2026-03-02"]


def test_task_id_floor_orders_like_task_ids() -> None:
    now = datetime.now(UTC)
    assert task_id_floor(now - timedelta(seconds=1)) <= "task_" + new_ulid()
    assert task_id_floor(now + timedelta(seconds=5)) > "task_" + new_ulid()
    assert task_id_floor(now) <= "task_" + ulid_at(now)


async def test_spend_and_usage_per_day_per_model(app: Console) -> None:
    ada = await app.account("Ada")
    bob = await app.account("Bob")
    ids = [
        await app.task(ada, days_ago=0, output_tokens=100),
        await app.task(ada, days_ago=0, model="MiniMax-M2.5-highspeed", output_tokens=300),
        await app.task(ada, days_ago=2, input_tokens=500, output_tokens=50),
        await app.task(ada, days_ago=40),  # outside the window
        await app.task(bob, days_ago=0, output_tokens=999),
    ]
    assert len(set(ids)) == 5
    days = window(app.clock.now, 30)

    spend = await spend_per_day(app.db, days, ada.id)
    assert len(spend) == 30
    figures = await account_figures(app.db, ada.id)
    assert figures is not None
    # Today and two days ago have charges; the 40-day-old one is outside; nothing else.
    assert spend[-1] > 0
    assert spend[-3] > 0
    assert sum(1 for v in spend if v) == 2
    assert sum(spend) < figures.spent_total_micros  # the old charge counts in the total only

    usage = await usage_per_day(app.db, ada.id, days)
    by_key = {(u.day, u.model): u for u in usage}
    today, two_ago = days[-1], days[-3]
    assert set(by_key) == {
        (today, "MiniMax-M2.7"),
        (today, "MiniMax-M2.5-highspeed"),
        (two_ago, "MiniMax-M2.7"),
    }
    assert by_key[(today, "MiniMax-M2.7")].requests == 1
    assert by_key[(today, "MiniMax-M2.7")].output_tokens == 100
    assert by_key[(two_ago, "MiniMax-M2.7")].input_tokens == 500
    # The per-day cost of the tasks is exactly the ledger's spend of that day.
    assert sum(u.cost_micros for u in usage if u.day == today) == spend[-1]

    everyone = await spend_per_day(app.db, days)
    assert everyone[-1] == spend[-1] + (await spend_per_day(app.db, days, bob.id))[-1]


async def test_admin_rankings(app: Console) -> None:
    ada = await app.account("Ada")
    bob = await app.account("Bob")
    await app.task(ada, model="MiniMax-M2.5-highspeed", output_tokens=2000)
    await app.task(bob, model="MiniMax-M2.7", output_tokens=100)
    await app.task(bob, model="MiniMax-M2.7", output_tokens=100, days_ago=45)
    since = app.clock.now - timedelta(days=30)
    top = await spend_by_model(app.db, since)
    assert [m for m, _ in top] == ["MiniMax-M2.5-highspeed", "MiniMax-M2.7"]
    assert top[0][1] > top[1][1] > 0
    recent = await spend_by_account(app.db, [ada.id, bob.id], since)
    assert set(recent) == {ada.id, bob.id}
    assert recent[ada.id] == top[0][1]
    assert await spend_by_account(app.db, [], since) == {}

    page, more = await list_accounts(app.db, after=None, limit=1)
    assert [a.id for a in page] == [ada.id]
    assert more
    page, more = await list_accounts(app.db, after=ada.id, limit=1)
    assert [a.id for a in page] == [bob.id]
    assert not more
    assert page[0].available_micros == page[0].balance_micros - page[0].held_micros


async def test_key_state_sees_revocation(app: Console) -> None:
    ada = await app.account("Ada")
    state = await key_state(app.db, ada.key_id)
    assert state is not None
    assert not state.revoked
    await KeyRepository(app.db).revoke(ada.key_id)
    state = await key_state(app.db, ada.key_id)
    assert state is not None
    assert state.revoked
    assert await key_state(app.db, "key_missing") is None
