"""Refunds of a task's charge on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from runapi.billing import Ledger, refund_task
from runapi.billing.invoices import generate_invoices
from runapi.catalog import Catalog
from runapi.errors import Conflict, InvalidRequest, NotFound
from runapi.ids import new_ulid
from runapi.store.database import Database

from .conftest import Account, Clock, NewAccount
from .helpers import assert_ledger_consistent, entries_of, usage

pytestmark = pytest.mark.timeout(120)

COST = 588  # usage() on MiniMax-M2.7


async def charged_task(ledger: Ledger, catalog: Catalog, account: Account) -> str:
    task_id = "task_" + new_ulid()
    model = catalog.resolve("MiniMax-M2.7")
    adm = await ledger.admit(
        account_id=account.id,
        account_created_at=account.created_at,
        task_id=task_id,
        model=model,
        est_input_tokens=1000,
        max_output_tokens=1000,
    )
    charge = await ledger.settle(adm, usage(), model)
    assert (charge.cost_micros, charge.billed) == (COST, True)
    return task_id


async def paying_account(ledger: Ledger, new_account: NewAccount, clock: Clock) -> Account:
    """Past the free-call window, with $1 paid."""
    account = await new_account()
    account = Account(account.id, clock.now - timedelta(days=60))
    await ledger.topup(account.id, 1_000_000, "pay-" + new_ulid())
    return account


async def test_a_charge_is_refunded_in_parts_never_beyond_it(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await paying_account(ledger, new_account, clock)
    task_id = await charged_task(ledger, catalog, account)
    before = await ledger.balance(account.id)
    assert (before.balance_micros, before.spent_total_micros) == (1_000_000 - COST, COST)

    part = await refund_task(db, task_id, amount_micros=200, refund_id="r-1", reason="truncated answer")
    assert (part.applied, part.amount_micros, part.charged_micros, part.refunded_micros) == (
        True,
        200,
        COST,
        200,
    )
    assert part.account_id == account.id
    assert part.balance_micros == 1_000_000 - COST + 200

    # Too much for what is left: refused, and nothing of it stays.
    with pytest.raises(Conflict) as over:
        await refund_task(db, task_id, amount_micros=COST, refund_id="r-2")
    assert over.value.code == "refund_exceeds_charge"
    assert (await ledger.balance(account.id)).balance_micros == 1_000_000 - COST + 200

    rest = await refund_task(db, task_id, refund_id="r-3")  # no amount: all that is left
    assert (rest.amount_micros, rest.refunded_micros) == (COST - 200, COST)
    with pytest.raises(Conflict) as empty:
        await refund_task(db, task_id, refund_id="r-4")
    assert empty.value.code == "nothing_to_refund"

    view = await ledger.balance(account.id)
    assert (view.balance_micros, view.spent_total_micros, view.spent_this_month_micros) == (1_000_000, 0, 0)
    assert view.paid_total_micros == 1_000_000  # a refund is not a payment: tiers do not move
    assert await entries_of(db, task_id) == [
        ("hold", 1500),
        ("hold_release", -1500),
        ("charge", -COST),
        ("refund", 200),
        ("refund", COST - 200),
    ]
    await assert_ledger_consistent(db, account.id)


async def test_the_same_refund_id_is_a_no_op_and_cannot_change(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await paying_account(ledger, new_account, clock)
    task_id = await charged_task(ledger, catalog, account)
    first = await refund_task(db, task_id, amount_micros=100, refund_id="once")
    again = await refund_task(db, task_id, amount_micros=100, refund_id="once")
    assert (again.applied, again.amount_micros, again.balance_micros) == (False, 100, first.balance_micros)
    assert (await refund_task(db, task_id, refund_id="once")).applied is False  # no amount: the same
    rest = await refund_task(db, task_id, refund_id="rest")
    # Retries are answered as they were, even with nothing left to refund now.
    assert (await refund_task(db, task_id, refund_id="rest")).amount_micros == rest.amount_micros
    assert (await refund_task(db, task_id, amount_micros=100, refund_id="once")).applied is False
    with pytest.raises(Conflict):
        await refund_task(db, task_id, amount_micros=101, refund_id="once")
    other = await charged_task(ledger, catalog, account)
    with pytest.raises(Conflict):
        await refund_task(db, other, amount_micros=100, refund_id="once")
    assert [e for e in await entries_of(db, task_id) if e[0] == "refund"] == [
        ("refund", 100),
        ("refund", COST - 100),
    ]
    await assert_ledger_consistent(db, account.id)


async def test_what_cannot_be_refunded(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount
) -> None:
    with pytest.raises(NotFound) as missing:
        await refund_task(db, "task_" + new_ulid())
    assert missing.value.code == "charge_not_found"
    with pytest.raises(InvalidRequest):
        await refund_task(db, "task_" + new_ulid(), amount_micros=0)
    # A free first call was charged and granted back: nothing to refund.
    fresh = await new_account()
    free = await charged_task(ledger, catalog, fresh)
    assert await entries_of(db, free) == [("charge", -COST), ("free_grant", COST)]
    with pytest.raises(Conflict) as nothing:
        await refund_task(db, free)
    assert nothing.value.code == "nothing_to_refund"
    await assert_ledger_consistent(db, fresh.id)


async def test_concurrent_refunds_of_one_task_never_exceed_its_charge(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await paying_account(ledger, new_account, clock)
    task_id = await charged_task(ledger, catalog, account)
    share = COST * 2 // 5  # two fit, the third would pass the charge

    async def attempt(n: int) -> int:
        try:
            return (await refund_task(db, task_id, amount_micros=share, refund_id=f"c-{n}")).amount_micros
        except Conflict:
            return 0

    outcomes = await asyncio.gather(*(attempt(n) for n in range(8)))
    assert sorted(outcomes, reverse=True)[:3] == [share, share, 0]
    assert sum(outcomes) == 2 * share
    assert (await ledger.balance(account.id)).balance_micros == 1_000_000 - COST + 2 * share
    await assert_ledger_consistent(db, account.id)


async def test_the_invoice_nets_refunds(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await paying_account(ledger, new_account, clock)
    task_id = await charged_task(ledger, catalog, account)
    await refund_task(db, task_id, amount_micros=88, refund_id="inv-1")
    month = clock.now.strftime("%Y-%m")
    invoices = await generate_invoices(
        db, month, account_ids=[account.id], now=clock.now + timedelta(days=40)
    )
    assert len(invoices) == 1
    assert (invoices[0].subtotal_micros, invoices[0].refunds_micros, invoices[0].total_micros) == (
        COST,
        -88,
        COST - 88,
    )
