"""Credit: payments (`topup`) and promotional credit (`adjustment` with `meta.bonus`).

Both are one transaction: the ledger entry under its idempotency key, then the account row. Only a
payment counts toward tiers (`paid_total_micros`, `first_payment_at`, runapi-contract §6.1, §8.3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from runapi.errors import Conflict, InvalidRequest, NotFound
from runapi.ids import new_ulid
from runapi.store.database import Database
from runapi.store.schema import TS, accounts, ledger_entries

from .entries import EntryType, entry_row, insert_entries_once, utc
from .money import usd_to_micros


class TopUp(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    idempotency_key: str
    applied: bool  # False: this payment was already recorded, nothing changed
    balance_micros: int
    paid_total_micros: int
    first_payment_at: datetime | None


async def record_topup(
    db: Database,
    account_id: int,
    amount_micros: int,
    payment_id: str,
    *,
    bonus: bool = False,
    now: datetime | None = None,
) -> TopUp:
    """Credit `topup:{payment_id}` (or `adjustment:{payment_id}` for bonus credit). The same payment
    id again is a no-op; with another amount or account it is a 409."""
    if amount_micros <= 0:
        raise InvalidRequest("A top-up must be a positive amount.", param="usd")
    if not payment_id:
        raise InvalidRequest("A top-up needs a payment id.", param="payment_id")
    now = now or datetime.now(UTC)
    entry_type = EntryType.ADJUSTMENT if bonus else EntryType.TOPUP
    key = f"{entry_type.value}:{payment_id}"
    meta = {"bonus": True, "payment_id": payment_id} if bonus else {"payment_id": payment_id}
    a = accounts.c
    async with db.begin() as conn:
        try:
            inserted = (
                await conn.execute(
                    insert_entries_once(db).values(
                        entry_row(
                            account_id=account_id,
                            entry_type=entry_type,
                            amount_micros=amount_micros,
                            idempotency_key=key,
                            created_at=now,
                            meta=meta,
                        )
                    )
                )
            ).first()
        except IntegrityError as exc:  # the foreign key: no such account
            raise NotFound(f"No account {account_id}.") from exc
        if inserted is None:
            return await _repeated(conn, account_id, key, amount_micros)
        values: dict[str, Any] = {"balance_micros": a.balance_micros + amount_micros}
        if bonus:
            values["bonus_micros"] = a.bonus_micros + amount_micros
        else:
            values["paid_total_micros"] = a.paid_total_micros + amount_micros
            values["first_payment_at"] = func.coalesce(a.first_payment_at, literal(now, TS))
        row = (
            await conn.execute(
                update(accounts)
                .where(a.id == account_id)
                .values(values)
                .returning(a.balance_micros, a.paid_total_micros, a.first_payment_at)
            )
        ).one()
    return _topup(account_id, key, True, row)


async def credit_usd(
    db: Database, account_id: int, usd: Decimal | str, payment_id: str | None = None, *, bonus: bool = False
) -> TopUp:
    """`runapi credit ACCOUNT USD`: a top-up in USD. Without a payment id every call credits anew."""
    try:
        micros = usd_to_micros(usd)
    except (ValueError, ArithmeticError) as exc:
        raise InvalidRequest(f"{usd!r} is not a USD amount with at most 6 decimals.", param="usd") from exc
    return await record_topup(db, account_id, micros, payment_id or "manual_" + new_ulid(), bonus=bonus)


async def _repeated(conn: AsyncConnection, account_id: int, key: str, amount_micros: int) -> TopUp:
    e, a = ledger_entries.c, accounts.c
    stored = (await conn.execute(select(e.account_id, e.amount_micros).where(e.idempotency_key == key))).one()
    if stored.account_id != account_id or stored.amount_micros != amount_micros:
        raise Conflict(f"Payment {key} was already recorded with another account or amount.")
    row = (
        await conn.execute(
            select(a.balance_micros, a.paid_total_micros, a.first_payment_at).where(a.id == account_id)
        )
    ).one()
    return _topup(account_id, key, False, row)


def _topup(account_id: int, key: str, applied: bool, row: Any) -> TopUp:
    return TopUp(
        account_id=account_id,
        idempotency_key=key,
        applied=applied,
        balance_micros=row.balance_micros,
        paid_total_micros=row.paid_total_micros,
        first_payment_at=utc(row.first_payment_at) if row.first_payment_at else None,
    )
