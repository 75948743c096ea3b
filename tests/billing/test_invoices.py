"""Monthly invoices reconcile with the ledger to the micro-dollar (runapi-contract §10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
from sqlalchemy import update

from runapi.billing import Ledger, PriceBook, seed_price_schedules
from runapi.billing.invoice_html import render_invoice_html
from runapi.billing.invoices import generate_invoices, get_invoice, list_invoices, period_bounds
from runapi.catalog import Catalog
from runapi.errors import InvalidRequest, NotFound
from runapi.ids import new_ulid
from runapi.settings import BillingSettings
from runapi.store.database import Database
from runapi.store.schema import accounts

from .conftest import Clock, NewAccount
from .helpers import usage

OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)


async def run_month(
    db: Database, catalog: Catalog, clock: Clock, account_id: int, created: datetime
) -> list[int]:
    """A month of traffic with a price change on the 20th; returns the posted costs (free call included)."""
    clock.now = OCT_1 + timedelta(hours=1)
    m27 = catalog.resolve("MiniMax-M2.7")
    await seed_price_schedules(db, catalog, clock.now)
    # The operator raises M2.7's output price from the 20th.
    raised = msgspec.structs.replace(
        m27,
        prices=msgspec.structs.replace(m27.prices, output=Decimal("1.50")),
        effective_from=OCT_1 + timedelta(days=19),
    )
    await seed_price_schedules(db, Catalog([raised], {}), clock.now)
    ledger = Ledger(db, await PriceBook.load(db), BillingSettings(), clock=clock)
    await ledger.topup(account_id, 50_000_000, f"pay-{account_id}")
    costs: list[int] = []
    for day in range(28):
        clock.now = OCT_1 + timedelta(days=day, hours=12)
        for i, model in enumerate(("MiniMax-M2.7", "MiniMax-M2.5-highspeed")):
            adm = await ledger.admit(
                account_id=account_id,
                account_created_at=created,
                task_id="task_" + new_ulid(),
                model=catalog.resolve(model),
                est_input_tokens=5000,
                max_output_tokens=2000,
            )
            u = usage(
                input_tokens=3001 + day * 7,
                cached=day * 50,
                output_tokens=101 + day + i,
                cache_write_tokens=3,
            )
            if day == 5 and i == 1:
                await ledger.void(adm, "failed")
                continue
            charge = await ledger.settle(
                adm, u if day != 6 else usage(output_tokens=0), catalog.resolve(model)
            )
            if charge.billed:
                costs.append(charge.cost_micros)
    # November traffic is not October's.
    clock.now = OCT_1 + timedelta(days=31, hours=1)
    adm = await ledger.admit(
        account_id=account_id,
        account_created_at=created,
        task_id="task_" + new_ulid(),
        model=m27,
        est_input_tokens=10,
        max_output_tokens=10,
    )
    await ledger.settle(adm, usage(), m27)
    return costs


async def test_invoice_total_equals_the_months_charges(
    db: Database, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await new_account("Ada")
    created = OCT_1  # new in October: its first call of each model is free
    costs = await run_month(db, catalog, clock, account.id, created)
    free = costs[0] + costs[1]

    seen: list[tuple[int, int]] = []
    issued = OCT_1 + timedelta(days=31, hours=2)
    [invoice] = await generate_invoices(
        db,
        "2026-10",
        progress=lambda done, total: seen.append((done, total)),
        account_ids=[account.id],
        now=issued,
    )
    assert seen == [(0, 1), (1, 1)]
    assert invoice.number == f"RA-2026-10-{account.id:06d}"
    assert (invoice.period_start, invoice.period_end) == period_bounds("2026-10")
    assert invoice.subtotal_micros == sum(costs)
    assert invoice.free_grants_micros == -free
    assert invoice.total_micros == sum(costs) - free
    assert invoice.total == str(
        (Decimal(invoice.total_micros) / 1_000_000).quantize(Decimal("0.01"), "ROUND_HALF_UP")
    )
    assert (
        sum(item.amount_micros for item in invoice.line_items) + invoice.rounding_micros
        == invoice.subtotal_micros
    )
    assert abs(invoice.rounding_micros) <= len(costs)  # at most half a µ$ per task
    assert (invoice.status, invoice.due_at, invoice.issued_at) == ("paid", None, issued)

    # The price change on the 20th gives M2.7 two output lines; each line is tokens x unit price.
    m27_output = [i for i in invoice.line_items if i.model == "MiniMax-M2.7" and i.token_class == "output"]
    assert [i.unit_price_per_1m for i in m27_output] == ["1.20", "1.50"]
    assert sum(i.tokens for i in m27_output) == sum(101 + d for d in range(28) if d != 6)
    for item in invoice.line_items:
        assert item.amount_micros == int(
            (item.tokens * Decimal(item.unit_price_per_1m)).quantize(1, "ROUND_HALF_UP")
        )
    assert {i.token_class for i in invoice.line_items} == {"input", "cached_input", "cache_write", "output"}

    # Running the job again gives the same invoice, not a new one.
    [again] = await generate_invoices(db, "2026-10", account_ids=[account.id], now=issued + timedelta(days=3))
    assert again == invoice
    assert await get_invoice(db, account.id, invoice.id) == invoice
    assert await get_invoice(db, account.id, invoice.number) == invoice
    with pytest.raises(NotFound):
        await get_invoice(db, account.id + 1, invoice.id)
    page, more = await list_invoices(db, account.id)
    assert (page, more) == ([invoice], False)

    html = render_invoice_html(invoice, account_name="Ada")
    assert invoice.number in html
    assert f"${invoice.total}" in html
    assert "Cached input" in html


async def test_postpaid_invoices_are_open_and_due_net_30(
    db: Database, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await new_account()
    async with db.begin() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account.id).values(postpaid=True))
    costs = await run_month(db, catalog, clock, account.id, OCT_1 - timedelta(days=90))
    # A month still running is a draft.
    [draft] = await generate_invoices(db, "2026-10", account_ids=[account.id], now=OCT_1 + timedelta(days=29))
    assert draft.status == "draft"
    [final] = await generate_invoices(db, "2026-10", account_ids=[account.id], now=OCT_1 + timedelta(days=32))
    assert (final.id, final.number, final.issued_at) == (draft.id, draft.number, draft.issued_at)
    assert final.status == "open"
    assert final.due_at == datetime(2026, 10, 31, tzinfo=UTC) + timedelta(days=31)
    assert final.total_micros == sum(costs)
    assert final.free_grants_micros == 0
    # Months without activity produce no invoice; bad periods are rejected.
    assert await generate_invoices(db, "2026-08", account_ids=[account.id]) == []
    with pytest.raises(InvalidRequest):
        await generate_invoices(db, "2026-13")


async def test_many_accounts_in_one_run(
    db: Database, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    ids = [(await new_account()).id for _ in range(3)]
    for account_id in ids[:2]:
        await run_month(db, catalog, clock, account_id, OCT_1 - timedelta(days=90))
    seen: list[tuple[int, int]] = []
    result = await generate_invoices(db, "2026-10", progress=lambda d, t: seen.append((d, t)))
    assert sorted(i.account_id for i in result) == ids[:2]
    assert seen[-1] == (2, 2)
