"""Monthly invoices from the ledger (runapi-contract §10).

A month's `charge` entries become line items per (model, token class, unit price), so a mid-month
price change gives two lines. Amounts stay in micro-dollars; the total is rounded half-up to cents
once. Each task's cost was rounded once to µ$ when it was charged, so the exact line amounts can
differ from the posted charges by those sub-µ$ roundings: `rounding_micros` carries the difference,
and `subtotal_micros` is exactly the sum of the month's charges. Running the job again for a month
rewrites the same invoice (same id, number and issue date), never a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import msgspec
from sqlalchemy import exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from runapi.errors import InvalidRequest, NotFound
from runapi.ids import new_ulid
from runapi.store.database import Database
from runapi.store.schema import accounts, invoices, ledger_entries

from .entries import EntryType, decode_charge_meta
from .money import round_half_up, usd_string_from_micros_cents

TokenClass = Literal["input", "cached_input", "cache_write", "output"]
InvoiceStatus = Literal["draft", "open", "paid", "void"]
Progress = Callable[[int, int], None]  # (accounts done, accounts total)

_CLASS_ORDER: dict[str, int] = {"input": 0, "cached_input": 1, "cache_write": 2, "output": 3}
_NET_TERMS = timedelta(days=30)  # Net-30 for postpaid accounts [ours]
_INVOICED_TYPES = (EntryType.CHARGE, EntryType.FREE_GRANT, EntryType.REFUND, EntryType.ADJUSTMENT)


class LineItem(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    token_class: TokenClass
    tokens: int
    unit_price_per_1m: str  # exact decimal USD
    amount_micros: int  # tokens x unit price, rounded half-up once per line


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    number: str
    account_id: int
    period: str
    period_start: datetime
    period_end: datetime
    currency: str
    status: InvoiceStatus
    line_items: list[LineItem]
    subtotal_micros: int  # the month's charges, exactly as posted
    rounding_micros: int  # subtotal - sum of line amounts (per-task rounding) [ours]
    free_grants_micros: int
    refunds_micros: int
    adjustments_micros: int
    total_micros: int
    total: str  # USD, rounded half-up to cents once
    issued_at: datetime
    due_at: datetime | None


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """`"2026-11"` → [2026-11-01T00:00Z, 2026-12-01T00:00Z) in UTC."""
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"A period is YYYY-MM, not {period!r}.", param="month") from exc
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def invoice_number(account_id: int, period: str) -> str:
    return f"RA-{period}-{account_id:06d}"


@dataclass
class _Totals:
    """Running sums of one account's month, fed entry by entry (the month is streamed)."""

    lines: dict[tuple[str, str, Decimal], int] = field(default_factory=dict)  # → tokens
    charges: int = 0  # debits, positive
    free_grants: int = 0  # credits, positive
    refunds: int = 0
    adjustments: int = 0

    def add(self, entry_type: str, amount: int, meta: Any) -> None:
        if entry_type == EntryType.CHARGE:
            self.charges += -amount
            charge = decode_charge_meta(meta)
            t, p = charge.tokens, charge.unit_prices
            for token_class, tokens, price in (
                ("input", t.input, p.input),
                ("cached_input", t.cached_input, p.cached_input),
                ("cache_write", t.cache_write, p.cache_write),
                ("output", t.output, p.output),
            ):
                if tokens:
                    key = (charge.model, token_class, price)
                    self.lines[key] = self.lines.get(key, 0) + tokens
        elif entry_type == EntryType.FREE_GRANT:
            self.free_grants += amount
        elif entry_type == EntryType.REFUND:
            self.refunds += amount
        elif entry_type == EntryType.ADJUSTMENT and not (isinstance(meta, dict) and meta.get("bonus")):
            # An operator correction; promotional credit is a top-up, not part of the invoice.
            self.adjustments += amount

    def line_items(self) -> list[LineItem]:
        ordered = sorted(self.lines.items(), key=lambda kv: (kv[0][0], _CLASS_ORDER[kv[0][1]], kv[0][2]))
        return [
            LineItem(
                model=model,
                token_class=token_class,  # type: ignore[arg-type]
                tokens=tokens,
                unit_price_per_1m=str(price),
                amount_micros=round_half_up(tokens * price),
            )
            for (model, token_class, price), tokens in ordered
        ]


async def generate_invoices(
    db: Database,
    period: str,
    progress: Progress | None = None,
    *,
    account_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> list[Invoice]:
    """Create or refresh the invoice of every account with ledger activity in `period` (YYYY-MM).

    `progress(done, total)` is called after each account, for the CLI's progress bar.
    """
    start, end = period_bounds(period)
    now = now or datetime.now(UTC)
    accounts_to_bill = await _active_accounts(db, start, end, account_ids)
    out: list[Invoice] = []
    if progress is not None:
        progress(0, len(accounts_to_bill))
    for done, (account_id, postpaid) in enumerate(accounts_to_bill, start=1):
        totals = await _month_totals(db, account_id, start, end)
        out.append(await _store(db, account_id, postpaid, period, start, end, totals, now))
        if progress is not None:
            progress(done, len(accounts_to_bill))
    return out


async def _active_accounts(
    db: Database, start: datetime, end: datetime, only: Sequence[int] | None
) -> list[tuple[int, bool]]:
    e = ledger_entries.c
    # Per account through the (account_id, created_at) index, in one statement.
    active = exists().where(
        e.account_id == accounts.c.id,
        e.created_at >= start,
        e.created_at < end,
        e.type.in_([t.value for t in _INVOICED_TYPES]),
    )
    query = select(accounts.c.id, accounts.c.postpaid).where(active).order_by(accounts.c.id)
    if only is not None:
        query = query.where(accounts.c.id.in_(list(only)))
    async with db.connect() as conn:
        return [(row.id, bool(row.postpaid)) for row in await conn.execute(query)]


async def _month_totals(db: Database, account_id: int, start: datetime, end: datetime) -> _Totals:
    e = ledger_entries.c
    totals = _Totals()
    query = select(e.type, e.amount_micros, e.meta).where(
        e.account_id == account_id,
        e.created_at >= start,
        e.created_at < end,
        e.type.in_([t.value for t in _INVOICED_TYPES]),
    )
    async with db.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=2000))
        async for row in result:
            totals.add(row.type, row.amount_micros, row.meta)
    return totals


async def _store(
    db: Database,
    account_id: int,
    postpaid: bool,
    period: str,
    start: datetime,
    end: datetime,
    totals: _Totals,
    now: datetime,
) -> Invoice:
    lines = totals.line_items()
    total = totals.charges - totals.free_grants - totals.refunds - totals.adjustments
    status: InvoiceStatus = "draft" if now < end else ("open" if postpaid else "paid")
    async with db.begin() as conn:
        existing = await _existing(conn, account_id, period)
        if existing is not None and (existing.status == "void" or (postpaid and existing.status == "paid")):
            return existing  # settled or voided invoices are final
        invoice = Invoice(
            id=existing.id if existing else "inv_" + new_ulid(),
            number=invoice_number(account_id, period),
            account_id=account_id,
            period=period,
            period_start=start,
            period_end=end,
            currency="USD",
            status=status,
            line_items=lines,
            subtotal_micros=totals.charges,
            rounding_micros=totals.charges - sum(line.amount_micros for line in lines),
            free_grants_micros=-totals.free_grants,
            refunds_micros=-totals.refunds,
            adjustments_micros=-totals.adjustments,
            total_micros=total,
            total=usd_string_from_micros_cents(total),
            issued_at=existing.issued_at if existing else now,
            due_at=end + _NET_TERMS if postpaid else None,
        )
        if invoice == existing:
            return invoice
        values = {
            "status": invoice.status,
            "document": msgspec.to_builtins(invoice),
            "total_micros": invoice.total_micros,
        }
        if existing is None:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(invoices).values(
                            id=invoice.id,
                            account_id=account_id,
                            period=period,
                            number=invoice.number,
                            issued_at=invoice.issued_at,
                            **values,
                        )
                    )
            except IntegrityError:  # another run created it first: keep theirs
                stored = await _existing(conn, account_id, period)
                assert stored is not None
                return stored
        else:
            await conn.execute(update(invoices).where(invoices.c.id == invoice.id).values(values))
    return invoice


async def _existing(conn: AsyncConnection, account_id: int, period: str) -> Invoice | None:
    row = (
        await conn.execute(
            select(invoices.c.document).where(
                invoices.c.account_id == account_id, invoices.c.period == period
            )
        )
    ).first()
    return None if row is None else decode_invoice(row.document)


def decode_invoice(document: Any) -> Invoice:
    return msgspec.convert(document, Invoice, strict=False)


async def list_invoices(
    db: Database, account_id: int, *, limit: int = 20, after: str | None = None
) -> tuple[list[Invoice], bool]:
    """Newest first; `after` is the id of the last invoice of the previous page."""
    query = select(invoices.c.document).where(invoices.c.account_id == account_id)
    if after:
        query = query.where(invoices.c.id < after)
    query = query.order_by(invoices.c.id.desc()).limit(limit + 1)
    async with db.connect() as conn:
        docs = [decode_invoice(row.document) for row in await conn.execute(query)]
    return docs[:limit], len(docs) > limit


async def get_invoice(db: Database, account_id: int, ident: str) -> Invoice:
    """By id (`inv_…`) or number (`RA-2026-11-000042`), of this account only."""
    column = invoices.c.number if ident.startswith("RA-") else invoices.c.id
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(invoices.c.document).where(column == ident, invoices.c.account_id == account_id)
            )
        ).first()
    if row is None:
        raise NotFound(f"No invoice {ident}.")
    return decode_invoice(row.document)
