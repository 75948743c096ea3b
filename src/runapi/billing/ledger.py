"""The two-phase ledger: hold at admission, then post or void (runapi-contract §7, §8).

Every operation is one transaction of a few statements. The hold is one guarded UPDATE, so N
parallel admissions can never overdraw an account; every later step is claimed with a guarded
UPDATE on its `holds` / `free_grants` row (`status = 'open'` / `'reserved'`), so a hold resolves at
most once even when a settlement, a void and the sweeper race, in one process or many; and every
ledger insert skips an existing idempotency key, so a retried settlement never charges twice.

Settlement works on batches (`settle_many`, `void_many`): one claim per table, one multi-row ledger
insert and one account UPDATE per account with summed deltas, whatever the batch size. A
group-commit writer can therefore collect the settlements of many requests and write them in one
transaction; `settle` is that path with a batch of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Unpack

import msgspec
from sqlalchemy import BigInteger, String, and_, bindparam, case, false, func, null, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from runapi.canonical import Usage
from runapi.catalog import Catalog, ModelEntry
from runapi.errors import InsufficientCredits, NotFound
from runapi.settings import BillingSettings
from runapi.store.batch import BatchTransaction
from runapi.store.database import Database
from runapi.store.schema import accounts, free_grants, holds, ledger_entries

from .credit import TopUp, record_topup
from .entries import (
    EntryType,
    ReleaseMeta,
    dialect_insert,
    entry_row,
    insert_entries_once,
    task_key,
    utc,
)
from .group_commit import AdmitJob, GroupCommitter, SettleJob
from .pricing import PriceBook, hold_micros
from .records import Admission, AdmissionTerms, Charge
from .settlement import Post, Settlement, Void, account_deltas_statement, charge_for

__all__ = ["Admission", "BalanceView", "Charge", "Ledger", "TopUp"]

log = logging.getLogger(__name__)

# Holds pending at once whose upstream calls started meanwhile (`Ledger.admit_ahead`): enough for
# any steady rate (a hold takes a trip of ~0.2-1.5 ms), far fewer than a burst.
MAX_AHEAD = 64
# The in-flight budget frees up as running requests finish: worth a retry after a moment.
_IN_FLIGHT_RETRY_AFTER = 2.0


class BalanceView(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    balance_micros: int  # posted
    held_micros: int  # open holds
    available_micros: int  # balance - held
    bonus_micros: int  # the promotional part of `available`
    paid_micros: int  # the rest of `available`
    spent_today_micros: int  # net charges since 00:00 UTC (free calls net to 0)
    spent_this_month_micros: int
    spent_total_micros: int
    # Tier inputs (runapi-contract §6.1): only paid credit counts.
    paid_total_micros: int
    first_payment_at: datetime | None
    postpaid: bool
    monthly_cap_micros: int | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ledger:
    def __init__(
        self,
        db: Database,
        prices: PriceBook,
        settings: BillingSettings,
        *,
        postpaid_caps: Mapping[int, int | None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """`postpaid_caps`: the monthly spend cap (µ$) of each tier, from the tier table, for
        postpaid accounts without a cap of their own; None in it means no cap (invoiced)."""
        self.db = db
        self.prices = prices
        self.settings = settings
        self._clock = clock
        self._cap = _cap_expression(postpaid_caps or {})
        # Built once: a statement object reused keeps its cache key, so SQLAlchemy skips building
        # the expression and its key on every admission.
        self._hold_stmt = _hold_statement(self._cap, paid_only_after_free=settings.paid_only_after_free)
        # A consumed grant never comes back, so this process stops asking for it (no statement).
        self._consumed_grants: set[tuple[int, str]] = set()
        self._group = GroupCommitter(self)
        self._ahead = 0  # holds queued by `admit_ahead` and not answered yet

    @classmethod
    async def start(
        cls,
        db: Database,
        catalog: Catalog,
        settings: BillingSettings,
        postpaid_caps: Mapping[int, int | None] | None = None,
    ) -> Ledger:
        """At startup: seed the catalog's prices (idempotent) and load every schedule into memory."""
        return cls(db, await PriceBook.load(db, catalog), settings, postpaid_caps=postpaid_caps)

    async def run_sweeper(self, stop: asyncio.Event) -> None:
        """Sweep expired holds every `sweep_interval_seconds` until `stop` is set. Run it in every
        process: concurrent sweeps are safe. A failed sweep is logged and retried next round."""
        while not stop.is_set():
            try:
                released = await self.sweep_expired_holds()
                if released:
                    log.info("released %d expired holds and grant reservations", released)
            except Exception:
                log.exception("hold sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.sweep_interval_seconds)

    # ------------------------------------------------------------ admission

    async def admit(self, **terms: Unpack[AdmissionTerms]) -> Admission:
        """Reserve a free grant, else hold the worst-case cost; raise `InsufficientCredits` (402)."""
        job = self._admit_job(terms)
        if isinstance(job, Admission):
            return job  # the local model: nothing to hold, nothing to grant
        return await self._group.admit(job)

    def admit_ahead(self, **terms: Unpack[AdmissionTerms]) -> asyncio.Future[Admission] | None:
        """Queue the hold and return its answer unawaited, so that the caller can start the
        upstream call while the hold is written (a database trip off the request's latency). The
        caller awaits it before anything of the generation is used, stored or billed, and drops the
        call if it fails (the usual 402). None when the answer must come first: a free first call
        may apply (it caps the request sent upstream), the account was refused a moment ago (so
        the next hold will likely fail too), the model is free (`admit` answers at once), or
        `MAX_AHEAD` holds are already pending this way. The last keeps a burst from starting
        thousands of upstream calls that then wait for the ledger (or are all dropped when the
        account cannot pay for them); under a burst admission paces the upstream again."""
        account_id = terms["account_id"]
        if self._ahead >= MAX_AHEAD or not self._group.bets_on(account_id):
            return None
        if self._grant_may_apply(account_id, terms["account_created_at"], terms["model"].id, self._clock()):
            return None
        job = self._admit_job(terms)
        if isinstance(job, Admission):
            return None
        self._group.put(job)
        self._ahead += 1
        job.done.add_done_callback(self._ahead_answered)
        return job.done

    def _ahead_answered(self, _: object) -> None:
        self._ahead -= 1

    def _admit_job(self, terms: AdmissionTerms) -> AdmitJob | Admission:
        """The job of one admission, or the Admission itself for a model that costs nothing."""
        now = self._clock()
        model, est_input_tokens, max_output_tokens = (
            terms["model"],
            terms["est_input_tokens"],
            terms["max_output_tokens"],
        )
        schedule = self.prices.schedule_for(model.id, now)
        base = Admission(
            task_id=terms["task_id"],
            account_id=terms["account_id"],
            model=model.id,
            hold_micros=0,
            free_call=False,
            output_cap=max_output_tokens,
            created_at=now,
            price_schedule_id=schedule.id if schedule else None,
        )
        if schedule is None or schedule.free:
            return base
        amount = hold_micros(
            model, est_input_tokens, max_output_tokens, schedule.prices_for(est_input_tokens)
        )
        return AdmitJob(
            base=base,
            account_created_at=terms["account_created_at"],
            amount=amount,
            done=asyncio.get_running_loop().create_future(),
        )

    def _grant_may_apply(self, account_id: int, created_at: datetime, model: str, now: datetime) -> bool:
        s = self.settings
        return (
            s.free_first_call
            and now - utc(created_at) < timedelta(days=s.free_call_window_days)
            and (account_id, model) not in self._consumed_grants
        )

    async def _reserve_grant(
        self, tx: BatchTransaction, account_id: int, model: str, task_id: str, now: datetime
    ) -> bool:
        """One statement: create the grant reserved, or flip it `available → reserved`; a grant that
        is reserved by another task or consumed stays as it is (no row returned)."""
        stmt = dialect_insert(self.db, free_grants).values(
            account_id=account_id, model=model, status="reserved", task_id=task_id, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["account_id", "model"],
            set_={"status": "reserved", "task_id": task_id, "updated_at": now},
            where=free_grants.c.status == "available",
        ).returning(free_grants.c.task_id)
        if (await tx.run(stmt)).first() is not None:
            return True
        # Not available. If it is consumed for good, stop asking for it in this process (without
        # this, every later request of the account would pay one more statement).
        status = (
            await tx.run(
                select(free_grants.c.status).where(
                    free_grants.c.account_id == account_id, free_grants.c.model == model
                )
            )
        ).scalar()
        if status == "consumed":
            self._consumed_grants.add((account_id, model))
        return False

    async def _hold(self, tx: BatchTransaction, account_id: int, amount: int, now: datetime) -> bool:
        """The guarded UPDATE of §8.4; zero rows means the hold does not fit."""
        changed = await tx.execute_one(
            self._hold_stmt, {"h_account": account_id, "h_amount": amount, "h_month": _month(now)}
        )
        return changed > 0

    def _hold_queued(self, tx: BatchTransaction, account_id: int, amount: int, now: datetime) -> None:
        """The same guarded UPDATE, queued with what follows it; the batch fails with `CheckFailed`
        if it does not fit (`BatchTransaction.add_checked`)."""
        tx.add_checked(self._hold_stmt, {"h_account": account_id, "h_amount": amount, "h_month": _month(now)})

    async def _refusal(self, tx: BatchTransaction, account_id: int, amount: int) -> Exception:
        """Only on the refusal path: read the account once to say why (§8.6)."""
        a = accounts.c
        row = (
            await tx.run(
                select(a.balance_micros, a.held_micros, a.postpaid, a.first_payment_at, a.tier).where(
                    a.id == account_id
                )
            )
        ).first()
        if row is None:
            return NotFound(f"No account {account_id}.")
        if row.postpaid:
            return _insufficient("The monthly spend cap of this account is reached.", "monthly_spend_cap")
        if self.settings.paid_only_after_free and row.first_payment_at is None and row.tier == 0:
            return _insufficient(
                "This account has no payment yet, so only the free first call of each model is "
                "available. Add credit to continue.",
                "insufficient_credits",
            )
        if row.balance_micros <= 0:
            return _insufficient("Insufficient credits. Add credit to continue.", "insufficient_credits")
        if amount > row.balance_micros:
            return _insufficient(
                "This request may cost more than the whole balance. Lower max_tokens or add credit.",
                "weight_exceeds_budget",
            )
        return _insufficient(
            "Requests in flight hold the rest of the balance. Retry when they finish, or add credit.",
            "in_flight_budget_exhausted",
            retry_after=_IN_FLIGHT_RETRY_AFTER,
        )

    # ------------------------------------------------------------ post / void

    async def settle(self, admission: Admission, usage: Usage, model: ModelEntry) -> Charge:
        """Post the actual cost from upstream usage and release the hold.

        Zero output tokens void instead (`zero_completion`). Repeating it is a no-op that returns
        the Charge recorded the first time. Concurrent settlements share one transaction
        (group commit); the call returns once its batch is committed.
        """
        if not admission.reserved:
            return (await self.settle_many([(admission, usage)]))[0]  # free model: no I/O
        future: asyncio.Future[Charge] = asyncio.get_running_loop().create_future()
        return await self._group.settle(SettleJob(admission, usage, "", future))

    async def void(self, admission: Admission, reason: str) -> Charge:
        """Release the hold (or give the grant back) without a charge. Idempotent.

        `reason` is a `ZeroChargeReason`: failed | zero_completion | canceled_before_start."""
        if not admission.reserved:
            return (await self.void_many([(admission, reason)]))[0]
        future: asyncio.Future[Charge] = asyncio.get_running_loop().create_future()
        return await self._group.settle(SettleJob(admission, None, reason, future))

    async def close(self) -> None:
        """Write what is queued, then stop the group-commit writer."""
        await self._group.close()

    async def settle_many(self, items: Sequence[tuple[Admission, Usage]]) -> list[Charge]:
        """Settle a batch in one transaction; results in the order of `items`."""
        work = Settlement()
        for admission, usage in items:
            if usage.output_tokens <= 0:
                work.voids.append(Void(admission, "zero_completion"))
            else:
                work.posts.append(self._price(admission, usage))
        return await self._resolve(work, [a.task_id for a, _ in items])

    async def void_many(self, items: Sequence[tuple[Admission, str]]) -> list[Charge]:
        work = Settlement(voids=[Void(admission, reason) for admission, reason in items])
        return await self._resolve(work, [a.task_id for a, _ in items])

    def _price(self, admission: Admission, usage: Usage) -> Post:
        schedule = None
        if admission.price_schedule_id is not None:
            schedule = self.prices.by_id(admission.price_schedule_id)
        if schedule is None:
            schedule = self.prices.schedule_for(admission.model, admission.created_at)
        return charge_for(admission, usage, schedule)

    async def _resolve(self, work: Settlement, order: list[str]) -> list[Charge]:
        work.dedupe()
        if work.needs_database:
            async with self.db.batch("ledger") as tx:
                results = await work.apply(tx, self.db, self._clock())
            for account_id, model in work.consumed_grants:
                self._consumed_grants.add((account_id, model))
        else:
            results = work.without_database()
        return [results[task_id] for task_id in order]

    # ------------------------------------------------------------ sweeper

    async def sweep_expired_holds(self, now: datetime | None = None, *, batch: int = 500) -> int:
        """Void open holds and grant reservations past their expiry (their process died).

        Safe in every process at once: each hold is claimed by one guarded UPDATE, and PostgreSQL
        skips rows another sweeper or a settlement has locked. Returns how many were released.
        """
        now = now or self._clock()
        released = 0
        for _ in range(1000):  # bounded: 500k holds per sweep at most
            async with self.db.begin() as conn:
                count = await self._sweep_batch(conn, now, batch)
            released += count
            if count < batch:
                break
        grant_cutoff = now - timedelta(seconds=self.settings.hold_ttl_seconds)
        async with self.db.begin() as conn:
            result = await conn.execute(
                update(free_grants)
                .where(free_grants.c.status == "reserved", free_grants.c.updated_at < grant_cutoff)
                .values(status="available", task_id=None, updated_at=now)
            )
        return released + int(result.rowcount or 0)

    async def _sweep_batch(self, conn: AsyncConnection, now: datetime, batch: int) -> int:
        h = holds.c
        expired = select(h.task_id).where(h.status == "open", h.expires_at < now).limit(batch)
        if not self.db.is_sqlite:
            expired = expired.with_for_update(skip_locked=True)
        rows = (
            await conn.execute(
                update(holds)
                .where(h.task_id.in_(expired), h.status == "open")
                .values(status="voided")
                .returning(h.task_id, h.account_id, h.amount_micros)
            )
        ).all()
        if not rows:
            return 0
        entries = [
            entry_row(
                account_id=row.account_id,
                entry_type=EntryType.HOLD_RELEASE,
                amount_micros=-row.amount_micros,
                idempotency_key=task_key(row.task_id, EntryType.HOLD_RELEASE),
                created_at=now,
                task_id=row.task_id,
                meta=ReleaseMeta(reason="expired"),
            )
            for row in rows
        ]
        await conn.execute(insert_entries_once(self.db).values(entries))
        released: dict[int, int] = {}
        for row in rows:
            released[row.account_id] = released.get(row.account_id, 0) + row.amount_micros
        await conn.execute(
            account_deltas_statement(),
            [
                {"a_id": acc, "d_cost": 0, "d_released": amount, "d_month": _month(now)}
                for acc, amount in sorted(released.items())
            ],
        )
        return len(rows)

    # ------------------------------------------------------------ credit and balance

    async def topup(self, account_id: int, amount_micros: int, payment_id: str, bonus: bool = False) -> TopUp:
        """Credit a payment; see `billing.credit.record_topup`. Idempotent per payment id."""
        now = self._clock()
        return await record_topup(self.db, account_id, amount_micros, payment_id, bonus=bonus, now=now)

    async def balance(self, account_id: int) -> BalanceView:
        now = self._clock()
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        a, e = accounts.c, ledger_entries.c
        spent_today = (
            select(func.coalesce(func.sum(e.amount_micros), 0))
            .where(
                e.account_id == account_id,
                e.created_at >= day_start,
                e.type.in_([EntryType.CHARGE.value, EntryType.FREE_GRANT.value]),
            )
            .scalar_subquery()
        )
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        a.balance_micros,
                        a.held_micros,
                        a.bonus_micros,
                        a.spent_total_micros,
                        a.spend_month,
                        a.spend_month_micros,
                        a.paid_total_micros,
                        a.first_payment_at,
                        a.postpaid,
                        a.monthly_cap_micros,
                        spent_today.label("net_today"),
                    ).where(a.id == account_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"No account {account_id}.")
        available = row.balance_micros - row.held_micros
        bonus_part = max(0, min(row.bonus_micros, available))
        return BalanceView(
            account_id=account_id,
            balance_micros=row.balance_micros,
            held_micros=row.held_micros,
            available_micros=available,
            bonus_micros=bonus_part,
            paid_micros=available - bonus_part,
            spent_today_micros=-int(row.net_today),
            spent_this_month_micros=row.spend_month_micros if row.spend_month == _month(now) else 0,
            spent_total_micros=row.spent_total_micros,
            paid_total_micros=row.paid_total_micros,
            first_payment_at=utc(row.first_payment_at) if row.first_payment_at else None,
            postpaid=bool(row.postpaid),
            monthly_cap_micros=row.monthly_cap_micros,
        )


def _hold_statement(cap: ColumnElement[int], *, paid_only_after_free: bool) -> Update:
    """`held += amount` only where the hold fits: prepaid within the available balance, postpaid
    within the monthly cap. Parameters: `h_account`, `h_amount`, `h_month`."""
    a = accounts.c
    amount = bindparam("h_amount", type_=BigInteger)
    prepaid_ok = a.balance_micros - a.held_micros >= amount
    if paid_only_after_free:
        prepaid_ok = and_(prepaid_ok, or_(a.first_payment_at.is_not(None), a.tier > 0))
    month_spent = case((a.spend_month == bindparam("h_month", type_=String), a.spend_month_micros), else_=0)
    postpaid_ok = or_(cap.is_(None), month_spent + a.held_micros + amount <= cap)
    return (
        update(accounts)
        .where(
            a.id == bindparam("h_account"),
            or_(and_(a.postpaid == false(), prepaid_ok), and_(a.postpaid == true(), postpaid_ok)),
        )
        .values(held_micros=a.held_micros + amount)
    )


def _cap_expression(caps: Mapping[int, int | None]) -> ColumnElement[int]:
    """The account's own cap, else its tier's (a CASE over the tier table's numbers)."""
    a = accounts.c
    if not caps:
        return a.monthly_cap_micros
    by_tier = case({tier: cap if cap is not None else null() for tier, cap in caps.items()}, value=a.tier)
    return func.coalesce(a.monthly_cap_micros, by_tier)


def _month(at: datetime) -> str:
    return at.strftime("%Y-%m")


def _insufficient(message: str, reason: str, retry_after: float | None = None) -> InsufficientCredits:
    return InsufficientCredits(message, metadata={"reason": reason}, retry_after=retry_after)
