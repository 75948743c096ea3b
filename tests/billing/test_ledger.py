"""The two-phase ledger on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiosqlite
import asyncpg
import msgspec
import pytest
from sqlalchemy import select, update

from runapi.billing import Admission, Ledger, PriceBook
from runapi.billing.ledger import MAX_AHEAD
from runapi.catalog import Catalog
from runapi.errors import Conflict, InsufficientCredits, NotFound
from runapi.ids import new_ulid
from runapi.settings import BillingSettings
from runapi.store.bulk import driver_connection
from runapi.store.database import Database
from runapi.store.schema import accounts, free_grants, holds

from .conftest import Account, Clock, LedgerFactory, NewAccount
from .helpers import assert_ledger_consistent, entries_of, usage

pytestmark = pytest.mark.timeout(120)

# 1000 input x 0.30 + 1000 output x 1.20 on MiniMax-M2.7.
HOLD_1K = 1500


def task() -> str:
    return "task_" + new_ulid()


async def old_account(new_account: NewAccount, clock: Clock) -> Account:
    """An account past the free-call window, so calls take the paid path."""
    account = await new_account()
    return Account(account.id, clock.now - timedelta(days=60))


async def admit(
    ledger: Ledger,
    catalog: Catalog,
    account: Account,
    model: str = "MiniMax-M2.7",
    *,
    est_input_tokens: int = 1000,
    max_output_tokens: int | None = 1000,
) -> Admission:
    return await ledger.admit(
        account_id=account.id,
        account_created_at=account.created_at,
        task_id=task(),
        model=catalog.resolve(model),
        est_input_tokens=est_input_tokens,
        max_output_tokens=max_output_tokens,
    )


async def test_hold_then_settle_posts_the_actual_cost(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 1_000_000, "pay-1")
    adm = await admit(ledger, catalog, account)
    assert (adm.hold_micros, adm.free_call, adm.reserved, adm.output_cap) == (HOLD_1K, False, True, 1000)
    view = await ledger.balance(account.id)
    assert (view.held_micros, view.available_micros) == (HOLD_1K, 1_000_000 - HOLD_1K)

    charge = await ledger.settle(adm, usage(), catalog.resolve("MiniMax-M2.7"))
    assert (charge.cost_micros, charge.billed, charge.free_call, charge.zero_charge_reason) == (
        588,
        True,
        False,
        None,
    )
    assert charge.price_schedule_id == adm.price_schedule_id is not None
    view = await ledger.balance(account.id)
    assert (view.balance_micros, view.held_micros, view.spent_total_micros) == (1_000_000 - 588, 0, 588)
    assert view.spent_today_micros == 588
    assert view.spent_this_month_micros == 588
    assert await entries_of(db, adm.task_id) == [
        ("hold", HOLD_1K),
        ("hold_release", -HOLD_1K),
        ("charge", -588),
    ]
    await assert_ledger_consistent(db, account.id)


async def test_settling_twice_charges_once(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 1_000_000, "pay-2")
    adm = await admit(ledger, catalog, account)
    model = catalog.resolve("MiniMax-M2.7")
    first = await ledger.settle(adm, usage(), model)
    again = await asyncio.gather(*(ledger.settle(adm, usage(), model) for _ in range(5)))
    assert all(c == first for c in again)
    # A different usage on a retry changes nothing either: the first settlement stands.
    assert await ledger.settle(adm, usage(output_tokens=9999), model) == first
    assert (await ledger.void(adm, "failed")) == first
    assert (await ledger.balance(account.id)).balance_micros == 1_000_000 - 588
    assert [t for t, _ in await entries_of(db, adm.task_id)] == ["hold", "hold_release", "charge"]
    await assert_ledger_consistent(db, account.id)


def admit_ahead(ledger: Ledger, catalog: Catalog, account: Account) -> asyncio.Future[Admission] | None:
    return ledger.admit_ahead(
        account_id=account.id,
        account_created_at=account.created_at,
        task_id=task(),
        model=catalog.resolve("MiniMax-M2.7"),
        est_input_tokens=1000,
        max_output_tokens=1000,
    )


async def test_holds_answered_later_are_bounded_and_refused_accounts_wait(
    ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    """`admit_ahead` queues a hold and hands back its answer to await later, up to `MAX_AHEAD`
    pending at once; past that, and for an account refused a moment ago, the caller must admit
    (and wait) first."""
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 10_000_000, "pay-ahead")
    pending = [admit_ahead(ledger, catalog, account) for _ in range(MAX_AHEAD)]
    assert admit_ahead(ledger, catalog, account) is None  # the bound
    answers = await asyncio.gather(*(p for p in pending if p is not None))
    assert len(answers) == MAX_AHEAD
    assert {(a.hold_micros, a.reserved) for a in answers} == {(HOLD_1K, True)}
    assert admit_ahead(ledger, catalog, account) is not None  # answered: room again

    poor = await old_account(new_account, clock)
    await ledger.topup(poor.id, 10, "pay-poor")
    refused = admit_ahead(ledger, catalog, poor)
    assert refused is not None
    with pytest.raises(InsufficientCredits):
        await refused
    assert admit_ahead(ledger, catalog, poor) is None  # refused a moment ago: admit first


async def test_void_releases_the_hold_without_charge(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 100_000, "pay-3")
    adm = await admit(ledger, catalog, account)
    charge = await ledger.void(adm, "failed")
    assert (charge.cost_micros, charge.billed, charge.zero_charge_reason) == (0, False, "failed")
    assert await ledger.void(adm, "failed") == charge
    view = await ledger.balance(account.id)
    assert (view.balance_micros, view.held_micros, view.available_micros) == (100_000, 0, 100_000)
    assert await entries_of(db, adm.task_id) == [("hold", HOLD_1K), ("hold_release", -HOLD_1K)]
    await assert_ledger_consistent(db, account.id)


async def test_void_of_an_admission_rebuilt_after_a_restart_releases_the_whole_hold(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    """Recovery voids a dead process's tasks with admissions that do not know the hold's amount
    (`hold_micros=0`): the release is the amount the hold row reserved."""
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 100_000, "pay-rebuilt")
    adm = await admit(ledger, catalog, account)
    rebuilt = msgspec.structs.replace(adm, hold_micros=0)
    await ledger.void(rebuilt, "failed")
    view = await ledger.balance(account.id)
    assert (view.held_micros, view.available_micros) == (0, 100_000)
    assert await entries_of(db, adm.task_id) == [("hold", HOLD_1K), ("hold_release", -HOLD_1K)]
    await assert_ledger_consistent(db, account.id)


async def test_zero_output_is_not_charged(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 100_000, "pay-4")
    adm = await admit(ledger, catalog, account)
    charge = await ledger.settle(adm, usage(output_tokens=0), catalog.resolve("MiniMax-M2.7"))
    assert (charge.cost_micros, charge.billed, charge.zero_charge_reason) == (0, False, "zero_completion")
    assert (await ledger.balance(account.id)).balance_micros == 100_000
    await assert_ledger_consistent(db, account.id)


async def test_200_parallel_admissions_never_overdraw(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 50 * HOLD_1K, "pay-5")
    results = await asyncio.gather(
        *(admit(ledger, catalog, account) for _ in range(200)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, Admission)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(admitted) == 50
    assert len(refused) == 150
    assert {r.metadata["reason"] for r in refused} == {"in_flight_budget_exhausted"}
    assert all(r.retry_after for r in refused)
    view = await ledger.balance(account.id)
    assert (view.held_micros, view.available_micros) == (50 * HOLD_1K, 0)
    async with db.connect() as conn:
        open_holds = (
            (await conn.execute(select(holds.c.task_id).where(holds.c.status == "open"))).scalars().all()
        )
    assert sorted(open_holds) == sorted(a.task_id for a in admitted)

    model = catalog.resolve("MiniMax-M2.7")
    charges = await asyncio.gather(*(ledger.settle(a, usage(), model) for a in admitted))
    view = await ledger.balance(account.id)
    assert view.balance_micros == 50 * HOLD_1K - sum(c.cost_micros for c in charges) == 50 * (HOLD_1K - 588)
    assert view.held_micros == 0
    await assert_ledger_consistent(db, account.id)


async def test_parallel_requests_are_each_charged_or_refused(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    """Admit and settle interleaved, 200 at once, on a balance worth 50 holds: never below zero, every
    request either charged or refused with 402, and the ledger equals the sum of the charges."""
    account = await old_account(new_account, clock)
    start = 50 * HOLD_1K
    await ledger.topup(account.id, start, "pay-6")
    model = catalog.resolve("MiniMax-M2.7")

    async def request(i: int) -> int | None:
        try:
            adm = await admit(ledger, catalog, account)
        except InsufficientCredits:
            return None
        # Actual usage varies per request and stays within the hold.
        charge = await ledger.settle(
            adm, usage(input_tokens=1000, cached=i % 7 * 100, output_tokens=1 + i), model
        )
        return charge.cost_micros

    costs = await asyncio.gather(*(request(i) for i in range(200)))
    charged = [c for c in costs if c is not None]
    assert charged, "some requests must get through"
    view = await ledger.balance(account.id)
    assert view.balance_micros == start - sum(charged) >= 0
    assert view.held_micros == 0
    await assert_ledger_consistent(db, account.id)


async def test_free_first_call_once_per_model(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount
) -> None:
    account = await new_account()
    adm = await admit(ledger, catalog, account, max_output_tokens=10_000)
    assert (adm.free_call, adm.hold_micros, adm.output_cap, adm.reserved) == (True, 0, 4096, True)
    charge = await ledger.settle(adm, usage(), catalog.resolve("MiniMax-M2.7"))
    assert (charge.cost_micros, charge.free_call, charge.billed) == (588, True, True)
    assert await entries_of(db, adm.task_id) == [("charge", -588), ("free_grant", 588)]
    assert (await ledger.balance(account.id)).balance_micros == 0

    # The grant is used up: with no payment the account gets 402 for this model ...
    with pytest.raises(InsufficientCredits) as refused:
        await admit(ledger, catalog, account)
    assert refused.value.metadata == {"reason": "insufficient_credits"}
    # ... while another model still has its own free call, capped by the client's smaller cap.
    other = await admit(ledger, catalog, account, model="MiniMax-M2.5", max_output_tokens=100)
    assert (other.free_call, other.output_cap) == (True, 100)
    await assert_ledger_consistent(db, account.id)


async def test_a_failed_free_call_keeps_the_grant(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount
) -> None:
    account = await new_account()
    adm = await admit(ledger, catalog, account, max_output_tokens=None)
    assert adm.free_call
    assert adm.output_cap == 4096
    charge = await ledger.void(adm, "failed")
    assert (charge.billed, charge.free_call, charge.zero_charge_reason) == (False, False, "failed")
    zero = await admit(ledger, catalog, account)
    assert zero.free_call
    assert (
        await ledger.settle(zero, usage(output_tokens=0), catalog.resolve("MiniMax-M2.7"))
    ).zero_charge_reason == ("zero_completion")
    again = await admit(ledger, catalog, account)
    assert again.free_call
    async with db.connect() as conn:
        status = (await conn.execute(select(free_grants.c.status, free_grants.c.task_id))).one()
    assert tuple(status) == ("reserved", again.task_id)


@pytest.mark.parametrize("funded", [False, True])
async def test_two_simultaneous_first_calls_are_free_only_once(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, funded: bool
) -> None:
    for round_ in range(5):
        account = await new_account()
        if funded:
            await ledger.topup(account.id, 1_000_000, f"pay-7-{round_}")
        results = await asyncio.gather(
            *(admit(ledger, catalog, account) for _ in range(2)), return_exceptions=True
        )
        free = [r for r in results if isinstance(r, Admission) and r.free_call]
        paid = [r for r in results if isinstance(r, Admission) and not r.free_call]
        refused = [r for r in results if isinstance(r, InsufficientCredits)]
        assert len(free) == 1
        assert (len(paid), len(refused)) == ((1, 0) if funded else (0, 1))
        await assert_ledger_consistent(db, account.id)


async def test_free_calls_only_for_new_accounts_and_paid_models(
    ledger: Ledger, make_ledger: LedgerFactory, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    old = await old_account(new_account, clock)
    with pytest.raises(InsufficientCredits):
        await admit(ledger, catalog, old)
    # The local model costs nothing: no grant, no hold, no database write, any account.
    local = await admit(ledger, catalog, old, model="SmolLM2-135M-Instruct", max_output_tokens=50)
    assert (local.free_call, local.hold_micros, local.reserved, local.output_cap) == (False, 0, False, 50)
    charge = await ledger.settle(local, usage(), catalog.resolve("SmolLM2-135M-Instruct"))
    assert (charge.cost_micros, charge.billed) == (0, True)
    # Free calls can be switched off.
    young = await new_account()
    with pytest.raises(InsufficientCredits):
        await admit(make_ledger(free_first_call=False), catalog, young)


async def test_refusal_reasons(
    make_ledger: LedgerFactory, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    ledger = make_ledger(paid_only_after_free=False)
    account = await old_account(new_account, clock)

    async def reason(max_output_tokens: int = 1000) -> str:
        with pytest.raises(InsufficientCredits) as refused:
            await admit(ledger, catalog, account, max_output_tokens=max_output_tokens)
        assert refused.value.status == 402
        return refused.value.metadata["reason"]

    assert await reason() == "insufficient_credits"  # no balance at all
    await ledger.topup(account.id, 2000, "pay-8")
    assert await reason(max_output_tokens=5000) == "weight_exceeds_budget"  # one hold > whole balance
    await admit(ledger, catalog, account)  # holds 1500 of 2000
    assert await reason() == "in_flight_budget_exhausted"


async def test_no_paid_calls_before_a_payment(
    make_ledger: LedgerFactory, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    strict, lenient = make_ledger(), make_ledger(paid_only_after_free=False)
    account = await old_account(new_account, clock)
    await strict.topup(account.id, 1_000_000, "promo-1", bonus=True)  # promotional credit is not a payment
    with pytest.raises(InsufficientCredits) as refused:
        await admit(strict, catalog, account)
    assert "no payment" in refused.value.message
    assert (await admit(lenient, catalog, account)).hold_micros == HOLD_1K
    await strict.topup(account.id, 1_000, "pay-9")
    assert (await admit(strict, catalog, account)).hold_micros == HOLD_1K


async def test_bonus_credit_is_spent_first(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 1000, "promo-2", bonus=True)
    await ledger.topup(account.id, 5000, "pay-10")
    view = await ledger.balance(account.id)
    assert (view.bonus_micros, view.paid_micros, view.paid_total_micros) == (1000, 5000, 5000)
    assert view.first_payment_at is not None
    await ledger.settle(await admit(ledger, catalog, account), usage(), catalog.resolve("MiniMax-M2.7"))
    view = await ledger.balance(account.id)
    assert (view.bonus_micros, view.paid_micros) == (1000 - 588, 5000)
    await assert_ledger_consistent(db, account.id)


async def test_topup_is_idempotent_per_payment(
    db: Database, ledger: Ledger, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    first = await ledger.topup(account.id, 10_000_000, "stripe_pi_1")
    assert (first.applied, first.balance_micros, first.paid_total_micros) == (True, 10_000_000, 10_000_000)
    again = await ledger.topup(account.id, 10_000_000, "stripe_pi_1")
    assert (again.applied, again.balance_micros) == (False, 10_000_000)
    assert again.first_payment_at == first.first_payment_at
    with pytest.raises(Conflict):
        await ledger.topup(account.id, 5, "stripe_pi_1")
    with pytest.raises(NotFound):
        await ledger.topup(999_999, 5, "stripe_pi_2")
    await assert_ledger_consistent(db, account.id)


async def test_sweep_voids_expired_holds_once(
    db: Database, make_ledger: LedgerFactory, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    ledger = make_ledger(hold_ttl_seconds=60)
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 100 * HOLD_1K, "pay-11")
    admissions = [await admit(ledger, catalog, account) for _ in range(30)]
    young = await new_account()
    free = await admit(ledger, catalog, young)
    assert free.free_call
    assert await ledger.sweep_expired_holds(clock.now + timedelta(seconds=59)) == 0

    # Three processes sweeping at once: each hold is released exactly once.
    later = clock.now + timedelta(seconds=61)
    swept = await asyncio.gather(*(ledger.sweep_expired_holds(later) for _ in range(3)))
    assert sum(swept) == 31
    view = await ledger.balance(account.id)
    assert (view.held_micros, view.balance_micros) == (0, 100 * HOLD_1K)
    for adm in admissions:
        assert await entries_of(db, adm.task_id) == [("hold", HOLD_1K), ("hold_release", -HOLD_1K)]
    await assert_ledger_consistent(db, account.id)
    # The swept free reservation is available again.
    assert (await admit(ledger, catalog, young)).free_call

    # A late settlement after the sweep posts the charge directly, once, without releasing twice.
    model = catalog.resolve("MiniMax-M2.7")
    charge = await ledger.settle(admissions[0], usage(), model)
    assert (charge.cost_micros, charge.billed) == (588, True)
    assert await ledger.settle(admissions[0], usage(), model) == charge
    assert (await ledger.void(admissions[1], "failed")).zero_charge_reason == "failed"
    view = await ledger.balance(account.id)
    assert (view.held_micros, view.balance_micros) == (0, 100 * HOLD_1K - 588)
    assert [t for t, _ in await entries_of(db, admissions[0].task_id)] == ["hold", "hold_release", "charge"]
    await assert_ledger_consistent(db, account.id)


async def test_settle_many_writes_a_batch_in_one_transaction(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    a, b = await old_account(new_account, clock), await old_account(new_account, clock)
    for acc in (a, b):
        await ledger.topup(acc.id, 1_000_000, f"pay-12-{acc.id}")
    young = await new_account()
    batch = [
        (await admit(ledger, catalog, a), usage()),
        (await admit(ledger, catalog, a), usage(output_tokens=0)),
        (await admit(ledger, catalog, b), usage(output_tokens=100)),
        (await admit(ledger, catalog, young), usage()),
        (await admit(ledger, catalog, a, model="SmolLM2-135M-Instruct"), usage()),
    ]
    charges = await ledger.settle_many(batch)
    assert [(c.cost_micros, c.billed, c.free_call, c.zero_charge_reason) for c in charges] == [
        (588, True, False, None),
        (0, False, False, "zero_completion"),
        (120 + 48 + 120, True, False, None),
        (588, True, True, None),
        (0, True, False, None),
    ]
    assert await ledger.settle_many(batch) == charges
    assert (await ledger.balance(a.id)).balance_micros == 1_000_000 - 588
    assert (await ledger.balance(b.id)).balance_micros == 1_000_000 - 288
    for acc in (a, b, young):
        await assert_ledger_consistent(db, acc.id)


async def test_m3_long_input_is_charged_at_the_tier_price(
    ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, 10_000_000, "pay-13")
    m3 = catalog.resolve("MiniMax-M3")
    adm = await admit(
        ledger, catalog, account, model="MiniMax-M3", est_input_tokens=600_000, max_output_tokens=10
    )
    assert adm.hold_micros == 600_000 * 0.60 + 10 * 2.40  # the hold prices the tier too
    charge = await ledger.settle(adm, usage(input_tokens=600_000, cached=0, output_tokens=10), m3)
    assert charge.cost_micros == 360_000 + 24


async def test_postpaid_accounts_are_capped_per_month(
    db: Database, ledger: Ledger, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    account = await old_account(new_account, clock)
    async with db.begin() as conn:
        await conn.execute(
            update(accounts).where(accounts.c.id == account.id).values(postpaid=True, monthly_cap_micros=2000)
        )
    adm = await admit(ledger, catalog, account)  # 0 spent + 1500 held <= 2000: no balance needed
    with pytest.raises(InsufficientCredits) as refused:
        await admit(ledger, catalog, account)
    assert refused.value.metadata == {"reason": "monthly_spend_cap"}
    await ledger.settle(adm, usage(), catalog.resolve("MiniMax-M2.7"))
    view = await ledger.balance(account.id)
    assert (view.balance_micros, view.spent_this_month_micros) == (-588, 588)
    with pytest.raises(InsufficientCredits):
        await admit(ledger, catalog, account)  # 588 + 1500 > 2000
    clock.advance(40 * 86400)  # a new month: the cap starts over
    assert (await admit(ledger, catalog, account)).hold_micros == HOLD_1K
    await assert_ledger_consistent(db, account.id)


async def test_postpaid_cap_defaults_to_the_tier_table(
    db: Database, prices: PriceBook, catalog: Catalog, new_account: NewAccount, clock: Clock
) -> None:
    caps = {0: 0, 1: 2000, 5: None}  # tier 5: invoiced, no cap
    ledger = Ledger(db, prices, BillingSettings(), postpaid_caps=caps, clock=clock)
    tier1, tier5 = await old_account(new_account, clock), await old_account(new_account, clock)
    async with db.begin() as conn:
        for account, tier in ((tier1, 1), (tier5, 5)):
            await conn.execute(
                update(accounts).where(accounts.c.id == account.id).values(postpaid=True, tier=tier)
            )
    await admit(ledger, catalog, tier1)
    with pytest.raises(InsufficientCredits) as refused:
        await admit(ledger, catalog, tier1)
    assert refused.value.metadata == {"reason": "monthly_spend_cap"}
    for _ in range(5):
        await admit(ledger, catalog, tier5)
    assert (await ledger.balance(tier5.id)).held_micros == 5 * HOLD_1K


async def test_the_sweeper_loop_runs_until_stopped(
    db: Database, catalog: Catalog, new_account: NewAccount
) -> None:
    settings = BillingSettings(hold_ttl_seconds=0, sweep_interval_seconds=0.01)
    ledger = await Ledger.start(db, catalog, settings)
    account = await new_account()
    await ledger.topup(account.id, 10 * HOLD_1K, "pay-14")
    old = Account(account.id, account.created_at - timedelta(days=60))
    await admit(ledger, catalog, old)
    stop = asyncio.Event()
    sweeper = asyncio.ensure_future(ledger.run_sweeper(stop))
    for _ in range(500):  # bounded wait for the first sweep
        if (await ledger.balance(account.id)).held_micros == 0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(sweeper, 5)
    assert (await ledger.balance(account.id)).held_micros == 0
    await assert_ledger_consistent(db, account.id)


class Trips:
    """Trips to the database: calls into aiosqlite's thread on SQLite, asyncpg calls on the ledger
    writer's connection on PostgreSQL (each a round trip)."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        if db.is_sqlite:
            self._wrap(monkeypatch, aiosqlite.Connection, "_execute", None)
        else:
            mine = driver_connection(db._kept["ledger"])
            for name in ("execute", "executemany", "fetch", "fetchval"):
                self._wrap(monkeypatch, asyncpg.Connection, name, mine)

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, cls: type, name: str, only: Any) -> None:
        original = getattr(cls, name)

        async def counted(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if only is None or conn is only:
                self.count += 1
            return await original(conn, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)


async def test_a_hold_and_its_settlement_are_one_trip_each_and_a_refusal_says_why(
    db: Database,
    ledger: Ledger,
    catalog: Catalog,
    new_account: NewAccount,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hold's guarded UPDATE (and a settlement's claim of the hold) rides in the queue with the
    inserts and the COMMIT; when it does not hold, the batch is rolled back and written again
    reading each answer, and a refusal says why."""
    account = await old_account(new_account, clock)
    await ledger.topup(account.id, HOLD_1K, "pay-trips")
    first = await admit(ledger, catalog, account, max_output_tokens=1)  # the writer's connection is made
    trips = Trips(db, monkeypatch)
    fits = await admit(ledger, catalog, account, est_input_tokens=10, max_output_tokens=10)
    assert trips.count == 1
    assert fits.hold_micros > 0
    # Its settlement too: the claim of its hold is checked with the rest, not read back first.
    trips.count = 0
    model = catalog.resolve("MiniMax-M2.7")
    charge = await ledger.settle(fits, usage(input_tokens=10, output_tokens=5, cached=0), model)
    assert trips.count == 1
    assert charge.cost_micros > 0
    monkeypatch.undo()

    with pytest.raises(InsufficientCredits) as refused:
        await admit(ledger, catalog, account)  # a 1,500 µ$ hold; the charge left less than that
    assert refused.value.metadata["reason"] == "weight_exceeds_budget"
    view = await ledger.balance(account.id)
    assert view.held_micros == first.hold_micros  # `fits` was settled; the refused one holds nothing
    await assert_ledger_consistent(db, account.id)
    # Just refused: the account's next admission is not bet on (a lost bet is an error in
    # PostgreSQL's log), so it is refused again without a rolled-back attempt.
    bets: list[bool] = []
    write = ledger._group._write

    async def spied(batch: Any, optimistic: bool = False) -> None:
        bets.append(optimistic)
        await write(batch, optimistic)

    monkeypatch.setattr(ledger._group, "_write", spied)
    with pytest.raises(InsufficientCredits):
        await admit(ledger, catalog, account)
    assert bets == [False]
    other = await old_account(new_account, clock)  # another account is still bet on
    await ledger.topup(other.id, HOLD_1K, "pay-trips-2")
    await admit(ledger, catalog, other)
    assert bets == [False, True]
