"""Ledger invariants the tests check after every scenario."""

from __future__ import annotations

from sqlalchemy import func, select

from runapi.billing.entries import BALANCE_TYPES, HOLD_TYPES
from runapi.canonical import Usage
from runapi.store.database import Database
from runapi.store.schema import accounts, holds, ledger_entries


async def assert_ledger_consistent(db: Database, account_id: int) -> None:
    """The account row is exactly the sum of its ledger entries, and `held` equals the open holds."""
    e = ledger_entries.c
    async with db.connect() as conn:
        row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).one()
        balance = (
            await conn.execute(
                select(func.coalesce(func.sum(e.amount_micros), 0)).where(
                    e.account_id == account_id, e.type.in_([t.value for t in BALANCE_TYPES])
                )
            )
        ).scalar_one()
        held = (
            await conn.execute(
                select(func.coalesce(func.sum(e.amount_micros), 0)).where(
                    e.account_id == account_id, e.type.in_([t.value for t in HOLD_TYPES])
                )
            )
        ).scalar_one()
        open_holds = (
            await conn.execute(
                select(func.coalesce(func.sum(holds.c.amount_micros), 0)).where(
                    holds.c.account_id == account_id, holds.c.status == "open"
                )
            )
        ).scalar_one()
    assert row.balance_micros == balance
    assert row.held_micros == held == open_holds
    assert row.held_micros >= 0


async def entries_of(db: Database, task_id: str) -> list[tuple[str, int]]:
    e = ledger_entries.c
    async with db.connect() as conn:
        rows = (
            await conn.execute(select(e.type, e.amount_micros).where(e.task_id == task_id).order_by(e.id))
        ).all()
    return [(r.type, r.amount_micros) for r in rows]


def usage(
    input_tokens: int = 1200, output_tokens: int = 350, cached: int = 800, cache_write_tokens: int = 0
) -> Usage:
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=cache_write_tokens,
    )
