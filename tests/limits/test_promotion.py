"""Tier promotion stored on the account: when thresholds are crossed, never down, never a pinned tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from runapi.auth import AccountRepository, KeyRepository
from runapi.billing import Ledger, PriceBook
from runapi.catalog import load_catalog
from runapi.limits import InProcessLimiterBackend, Limiter, LimitExceeded, TierTable
from runapi.limits.promotion import Promotion, promote_due_accounts, promote_if_due
from runapi.settings import BillingSettings
from runapi.store.database import Database
from runapi.store.schema import accounts
from tests.limits.conftest import FakeClock

USD = 1_000_000
NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiers() -> TierTable:
    return TierTable.shipped()


async def account(
    db: Database,
    *,
    paid_usd: int = 0,
    first_payment_days_ago: float | None = None,
    tier: int = 0,
    pinned: bool = False,
) -> int:
    account_id = (await AccountRepository(db).create("acct")).id
    first = None if first_payment_days_ago is None else NOW - timedelta(days=first_payment_days_ago)
    async with db.begin() as conn:
        await conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(paid_total_micros=paid_usd * USD, first_payment_at=first, tier=tier, tier_pinned=pinned)
        )
    return account_id


async def stored_tier(db: Database, account_id: int) -> int:
    async with db.connect() as conn:
        return int(
            (await conn.execute(select(accounts.c.tier).where(accounts.c.id == account_id))).scalar_one()
        )


async def test_promoted_when_the_threshold_is_crossed(db: Database, tiers: TierTable) -> None:
    account_id = await account(db, paid_usd=5, first_payment_days_ago=0)
    assert await promote_if_due(db, account_id, tiers, now=NOW) == 1
    assert await stored_tier(db, account_id) == 1
    assert await promote_if_due(db, account_id, tiers, now=NOW) is None  # once


async def test_days_condition_comes_due_later(db: Database, tiers: TierTable) -> None:
    account_id = await account(db, paid_usd=60, first_payment_days_ago=3, tier=1)
    assert await promote_if_due(db, account_id, tiers, now=NOW) is None
    assert await promote_if_due(db, account_id, tiers, now=NOW + timedelta(days=4)) == 2
    assert await stored_tier(db, account_id) == 2


async def test_never_demoted(db: Database, tiers: TierTable) -> None:
    account_id = await account(db, paid_usd=0, tier=3)
    assert await promote_if_due(db, account_id, tiers, now=NOW) is None
    assert await stored_tier(db, account_id) == 3


async def test_pinned_tier_is_left_alone(db: Database, tiers: TierTable) -> None:
    account_id = await account(db, paid_usd=5000, first_payment_days_ago=90, tier=1, pinned=True)
    assert await promote_if_due(db, account_id, tiers, now=NOW) is None
    assert await stored_tier(db, account_id) == 1


async def test_unknown_account(db: Database, tiers: TierTable) -> None:
    assert await promote_if_due(db, 999_999, tiers, now=NOW) is None


async def test_sweep_promotes_every_due_account(db: Database, tiers: TierTable) -> None:
    due = await account(db, paid_usd=250, first_payment_days_ago=10, tier=1)
    not_yet = await account(db, paid_usd=250, first_payment_days_ago=2, tier=1)
    pinned = await account(db, paid_usd=250, first_payment_days_ago=10, tier=0, pinned=True)
    unpaid = await account(db)
    promotions = await promote_due_accounts(db, tiers, now=NOW)
    assert promotions == [Promotion(due, 1, 3)]
    assert [await stored_tier(db, a) for a in (due, not_yet, pinned, unpaid)] == [3, 1, 0, 0]
    assert await promote_due_accounts(db, tiers, now=NOW) == []


async def test_top_up_gives_higher_limits_on_the_next_request(db: Database, tiers: TierTable) -> None:
    """End to end through the real ledger, key lookup and limiter: a tier-0 key is at 10 RPM; a
    $5 top-up promotes the account, and its next request is admitted under tier 1's 60 RPM."""
    account_id = (await AccountRepository(db).create("promoted")).id
    keys = KeyRepository(db, cache_seconds=60)
    secret = (await keys.create(account_id)).secret
    clock = FakeClock()
    limiter = Limiter(InProcessLimiterBackend(clock=clock), clock=clock)

    async def next_request() -> None:
        principal = await keys.authenticate(secret)
        limits = tiers.limits_for(principal.tier, "standard", principal.limit_overrides)
        ticket = await limiter.admit(
            key_id=principal.key_id,
            account_id=principal.account_id,
            model_class="standard",
            limits=limits,
            est_input_tokens=100,
        )
        await limiter.release(ticket, input_tokens=100, output_tokens=10)

    for _ in range(10):
        await next_request()
    with pytest.raises(LimitExceeded):
        await next_request()

    ledger = Ledger(db, await PriceBook.load(db, load_catalog()), BillingSettings())
    await ledger.topup(account_id, 5 * USD, "pay_1")
    assert await promote_if_due(db, account_id, tiers) == 1
    keys.forget_account(account_id)  # what the pipeline does with a promotion

    for _ in range(50):  # tier 1: 60 RPM, of which 10 were used a moment ago
        await next_request()
    with pytest.raises(LimitExceeded):
        await next_request()
    assert (await keys.authenticate(secret)).tier == 1
