"""Refunds: an operator gives back all or part of what a task was charged (`refund:{id}`, §8.3).

A refund credits the balance and takes the amount off the account's spend counters (the month's
spend is what a postpaid cap is checked against), in one transaction with its ledger entry. A task
can be refunded in several parts, never beyond what it was charged net of its free grant and the
refunds before: the check reads the task's entries after the account row is locked by the update,
so two refunds of one task at the same time cannot both pass it. The same refund id again is a
no-op; with another task or amount it is a 409.

The refunded credit counts as paid credit: what a charge took from bonus credit is not tracked per
charge, and a refund is not a payment, so tiers (paid totals) do not move.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from runapi.errors import Conflict, InvalidRequest, NotFound
from runapi.ids import new_ulid
from runapi.store.database import Database
from runapi.store.schema import accounts, ledger_entries

from .entries import EntryType, entry_row, insert_entries_once, task_key

# What a task's charge nets against: its charge (negative), its free grant and refunds (positive).
_TASK_NET_TYPES = (EntryType.CHARGE.value, EntryType.FREE_GRANT.value, EntryType.REFUND.value)
_MAX_REASON = 500


class RefundMeta(msgspec.Struct, frozen=True, kw_only=True):
    refund_id: str
    reason: str | None = None


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    task_id: str
    idempotency_key: str
    applied: bool  # False: this refund id was already recorded, nothing changed
    amount_micros: int
    charged_micros: int  # what the task was charged, net of its free grant
    refunded_micros: int  # all refunds of the task so far, this one included
    balance_micros: int


async def refund_task(
    db: Database,
    task_id: str,
    *,
    amount_micros: int | None = None,
    refund_id: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Refund:
    """Refund `amount_micros` of the task's charge (all that is left of it when None)."""
    if amount_micros is not None and amount_micros <= 0:
        raise InvalidRequest("A refund must be a positive amount.", param="usd")
    if reason is not None and len(reason) > _MAX_REASON:
        raise InvalidRequest(f"A refund reason is at most {_MAX_REASON} characters.", param="reason")
    refund_id = refund_id or "refund_" + new_ulid()
    key = f"{EntryType.REFUND.value}:{refund_id}"
    now = now or datetime.now(UTC)
    e, a = ledger_entries.c, accounts.c
    async with db.begin() as conn:
        charged_account = (
            await conn.execute(
                select(e.account_id).where(e.idempotency_key == task_key(task_id, EntryType.CHARGE))
            )
        ).scalar_one_or_none()
        if charged_account is None:
            raise NotFound(f"Task {task_id} has no charge to refund.", code="charge_not_found")
        account_id = int(charged_account)
        if (await conn.execute(select(e.id).where(e.idempotency_key == key))).first() is not None:
            # A retry: answered as it was, even when nothing is left to refund now.
            return await _repeated(conn, key, task_id, amount_micros)
        charged, refunded = await _task_totals(conn, task_id)
        amount = amount_micros if amount_micros is not None else charged - refunded
        if amount <= 0:
            raise Conflict(f"Task {task_id} has nothing left to refund.", code="nothing_to_refund")
        inserted = (
            await conn.execute(
                insert_entries_once(db).values(
                    entry_row(
                        account_id=account_id,
                        entry_type=EntryType.REFUND,
                        amount_micros=amount,
                        idempotency_key=key,
                        created_at=now,
                        task_id=task_id,
                        meta=RefundMeta(refund_id=refund_id, reason=reason),
                    )
                )
            )
        ).first()
        if inserted is None:
            return await _repeated(conn, key, task_id, amount_micros)
        month = now.strftime("%Y-%m")
        balance = (
            await conn.execute(
                update(accounts)
                .where(a.id == account_id)
                .values(
                    balance_micros=a.balance_micros + amount,
                    spent_total_micros=_floor_zero(db, a.spent_total_micros - amount),
                    spend_month_micros=case(
                        (a.spend_month == month, _floor_zero(db, a.spend_month_micros - amount)),
                        else_=a.spend_month_micros,
                    ),
                )
                .returning(a.balance_micros)
            )
        ).scalar_one()
        # Read after the update above locked the account row: a refund of this task that
        # committed meanwhile is counted here.
        charged, refunded = await _task_totals(conn, task_id)
        if refunded > charged:
            raise Conflict(
                f"A refund of {amount} µ$ would take task {task_id} past its charge: "
                f"{charged} µ$ charged, {refunded - amount} µ$ refunded before.",
                code="refund_exceeds_charge",
            )
    return Refund(
        account_id=account_id,
        task_id=task_id,
        idempotency_key=key,
        applied=True,
        amount_micros=amount,
        charged_micros=charged,
        refunded_micros=refunded,
        balance_micros=int(balance),
    )


def _floor_zero(db: Database, value: Any) -> Any:
    """max(value, 0): SQLite's two-argument max() is PostgreSQL's greatest()."""
    return func.max(value, 0) if db.is_sqlite else func.greatest(value, 0)


async def _task_totals(conn: AsyncConnection, task_id: str) -> tuple[int, int]:
    """(charged net of the free grant, refunded) of one task, in µ$."""
    e = ledger_entries.c
    rows = (
        await conn.execute(
            select(e.type, func.sum(e.amount_micros))
            .where(e.task_id == task_id, e.type.in_(_TASK_NET_TYPES))
            .group_by(e.type)
        )
    ).all()
    sums = {str(t): int(s) for t, s in rows}
    charged = -sums.get(EntryType.CHARGE.value, 0) - sums.get(EntryType.FREE_GRANT.value, 0)
    return charged, sums.get(EntryType.REFUND.value, 0)


async def _repeated(conn: AsyncConnection, key: str, task_id: str, amount_micros: int | None) -> Refund:
    e, a = ledger_entries.c, accounts.c
    stored = (
        await conn.execute(select(e.account_id, e.task_id, e.amount_micros).where(e.idempotency_key == key))
    ).one()
    if stored.task_id != task_id or (amount_micros is not None and stored.amount_micros != amount_micros):
        raise Conflict(f"Refund {key} was already recorded for another task or amount.")
    charged, refunded = await _task_totals(conn, task_id)
    balance = (await conn.execute(select(a.balance_micros).where(a.id == stored.account_id))).scalar_one()
    return Refund(
        account_id=int(stored.account_id),
        task_id=task_id,
        idempotency_key=key,
        applied=False,
        amount_micros=int(stored.amount_micros),
        charged_micros=charged,
        refunded_micros=refunded,
        balance_micros=int(balance),
    )


__all__ = ["Refund", "refund_task"]
