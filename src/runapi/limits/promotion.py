"""Automatic tier promotion, stored on `accounts.tier` (runapi-contract §6.1).

The write is guarded (`tier < new AND NOT tier_pinned`), so promotion never lowers a tier, never
touches a pinned one, and concurrent callers promote at most once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select, update

from runapi.limits.tiers import TierTable
from runapi.store.database import Database
from runapi.store.schema import accounts

_SWEEP_PAGE = 500


class TierInputs(msgspec.Struct, frozen=True, kw_only=True):
    """What the tier rules read from an account row."""

    account_id: int
    paid_total_micros: int
    first_payment_at: datetime | None
    tier: int
    tier_pinned: bool


_TIER_COLUMNS = (
    accounts.c.id,
    accounts.c.paid_total_micros,
    accounts.c.first_payment_at,
    accounts.c.tier,
    accounts.c.tier_pinned,
)


def _inputs(row: Any) -> TierInputs:
    first = row.first_payment_at
    if first is not None and first.tzinfo is None:
        first = first.replace(tzinfo=UTC)  # SQLite returns naive datetimes; we store UTC
    return TierInputs(
        account_id=int(row.id),
        paid_total_micros=int(row.paid_total_micros or 0),
        first_payment_at=first,
        tier=int(row.tier or 0),
        tier_pinned=bool(row.tier_pinned),
    )


async def read_tier_inputs(db: Database, account_id: int) -> TierInputs | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(*_TIER_COLUMNS).where(accounts.c.id == account_id))).first()
    return None if row is None else _inputs(row)


class Promotion(msgspec.Struct, frozen=True):
    account_id: int
    old_tier: int
    new_tier: int


async def promote_if_due(
    db: Database, account_id: int, tiers: TierTable, *, now: datetime | None = None
) -> int | None:
    """Raise the account to the highest tier it qualifies for. Returns the new tier, or None when
    nothing changed. Call it after a top-up or a settled invoice, and whenever a time condition
    may have come due."""
    inputs = await read_tier_inputs(db, account_id)
    if inputs is None:
        return None
    return await _promote(db, inputs, tiers, now or datetime.now(UTC))


async def promote_due_accounts(
    db: Database, tiers: TierTable, *, now: datetime | None = None
) -> list[Promotion]:
    """Promote every account whose time condition has come due since its last payment (a periodic
    sweep: a tier that needs N days since the first payment can come due with no request)."""
    now = now or datetime.now(UTC)
    automatic = [s for s in tiers.tiers if s.automatic and s.tier > 0]
    if not automatic:
        return []
    lowest_paid = min(s.min_paid_micros or 0 for s in automatic)
    highest = max(s.tier for s in automatic)
    done: list[Promotion] = []
    after = -1
    while True:
        async with db.connect() as conn:
            rows = (
                await conn.execute(
                    select(*_TIER_COLUMNS)
                    .where(
                        accounts.c.id > after,
                        accounts.c.tier_pinned.is_(False),
                        accounts.c.tier < highest,
                        accounts.c.paid_total_micros >= lowest_paid,
                    )
                    .order_by(accounts.c.id)
                    .limit(_SWEEP_PAGE)
                )
            ).all()
        for row in rows:
            inputs = _inputs(row)
            new = await _promote(db, inputs, tiers, now)
            if new is not None:
                done.append(Promotion(inputs.account_id, inputs.tier, new))
        if len(rows) < _SWEEP_PAGE:
            return done
        after = rows[-1].id


async def _promote(db: Database, inputs: TierInputs, tiers: TierTable, now: datetime) -> int | None:
    target = tiers.tier_for(
        inputs.paid_total_micros, inputs.first_payment_at, now, inputs.tier, inputs.tier_pinned
    )
    if target <= inputs.tier:
        return None
    async with db.begin() as conn:
        result = await conn.execute(
            update(accounts)
            .where(
                accounts.c.id == inputs.account_id,
                accounts.c.tier < target,
                accounts.c.tier_pinned.is_(False),
            )
            .values(tier=target)
        )
    return target if result.rowcount else None
