"""Group commit for the ledger's hot path: many requests' holds and settlements, one transaction.

Each admission and settlement is durable before the request goes on (a hold before anything of the
upstream's answer is used, a charge before the terminal event), but the requests in flight at the
same moment share one transaction: one commit (one fsync), one multi-row insert per table, and for
the common case of many requests on one account, one guarded UPDATE for all of their holds. The
writer is a single task per process, so on SQLite there is also no contention for the write lock
between requests.

Correctness does not depend on batching: a batch that fails as a whole is retried one job at a
time in its own transaction, so one bad job cannot fail its neighbours.

A batch first bets that every account's holds fit and every hold it settles is still open: the
guarded UPDATEs and the claims ride in the queue with the inserts and the COMMIT, one trip to
the database instead of two (`BatchTransaction.add_checked`). A guard or claim that does not
hold rolls that attempt back, and the batch is written again reading each row count, which says
exactly which holds fit (and why the others do not) and which settlements were already done. An
account refused a moment ago is not bet on (on PostgreSQL a lost bet is an error in its log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import bindparam, insert, select

from runapi.canonical import Usage
from runapi.store.batch import BatchTransaction, CheckFailed
from runapi.store.schema import accounts, holds

from .entries import INSERT_ENTRIES, EntryType, entry_row, task_key
from .pricing import hold_micros
from .records import Admission, Charge
from .settlement import Settlement, Void

if TYPE_CHECKING:
    from .ledger import Ledger

log = logging.getLogger(__name__)

# Enough to amortize a commit, small enough that one transaction stays short.
_MAX_BATCH = 512
# After a refusal, an account's admissions are written the careful way for this long.
_NO_BET_SECONDS = 5.0
# Built once: a reused statement keeps its cache key (no per-batch expression building).
_INSERT_HOLDS = insert(holds)


@dataclass(slots=True)
class AdmitJob:
    """One admission to write: `base` becomes its answer once the hold (`amount`, the worst case)
    or a free grant is in place."""

    base: Admission
    account_created_at: datetime
    amount: int
    done: asyncio.Future[Admission]

    @property
    def account_id(self) -> int:
        return self.base.account_id

    @property
    def task_id(self) -> str:
        return self.base.task_id


@dataclass(slots=True)
class SettleJob:
    admission: Admission
    usage: Usage | None  # None: a void
    reason: str
    done: asyncio.Future[Charge]


@dataclass(slots=True)
class _Batch:
    admits: list[AdmitJob] = field(default_factory=list)
    settles: list[SettleJob] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.admits) + len(self.settles)


class GroupCommitter:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._queue: list[AdmitJob | SettleJob] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._refused_at: dict[int, float] = {}  # account → when it was last refused (monotonic)

    # ------------------------------------------------------------------ API

    async def admit(self, job: AdmitJob) -> Admission:
        self.put(job)
        return await job.done

    async def settle(self, job: SettleJob) -> Charge:
        self.put(job)
        return await job.done

    def bets_on(self, account_id: int) -> bool:
        """Whether this account's holds are expected to fit: it was not refused a moment ago."""
        refused = self._refused_at.get(account_id)
        return refused is None or refused < time.monotonic() - _NO_BET_SECONDS

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # ------------------------------------------------------------------ writer

    def put(self, job: AdmitJob | SettleJob) -> None:
        """Queue a job; its `done` future gets the answer once its batch is written."""
        self._queue.append(job)
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run(), name="ledger-group-commit")

    async def _run(self) -> None:
        # One batch at a time. On PostgreSQL several in flight were measured to cost more CPU
        # per request on 2 cores shared with the database (smaller batches, more statements);
        # several gateway processes are concurrent writers anyway (see `_lock_accounts`).
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            taken, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            await self._commit(taken)

    async def _commit(self, taken: list[AdmitJob | SettleJob]) -> None:
        """Write one batch; a batch that fails as a whole is retried one job at a time."""
        batch = _Batch()
        for job in taken:
            (batch.admits if isinstance(job, AdmitJob) else batch.settles).append(job)  # type: ignore[arg-type]
        try:
            try:
                await self._write(batch, optimistic=self._worth_a_bet(batch))
            except CheckFailed:  # a hold did not fit, or one was not open: again, reading each answer
                await self._write(batch, optimistic=False)
        except Exception:
            log.warning("ledger batch of %d failed; retrying its jobs one by one", len(batch), exc_info=True)
            for job in taken:
                single = _Batch(
                    admits=[job] if isinstance(job, AdmitJob) else [],
                    settles=[job] if isinstance(job, SettleJob) else [],
                )
                try:
                    await self._write(single)
                except Exception as exc:
                    _fail(job, exc)

    async def _write(self, batch: _Batch, optimistic: bool = False) -> None:
        ledger = self.ledger
        now = ledger._clock()
        results: list[tuple[asyncio.Future[Admission], Admission | BaseException]] = []
        charges: dict[str, Charge] = {}
        work = Settlement()
        for job in batch.settles:
            if job.usage is None:
                work.voids.append(Void(job.admission, job.reason))
            elif job.usage.output_tokens <= 0:
                work.voids.append(Void(job.admission, "zero_completion"))
            else:
                work.posts.append(ledger._price(job.admission, job.usage))
        work.dedupe()
        async with ledger.db.batch("ledger") as tx:
            if batch.admits and work.needs_database and not ledger.db.is_sqlite:
                await _lock_accounts(tx, batch, work)
            if batch.admits:
                results = await self._admit_all(tx, batch.admits, now, optimistic)
            if work.needs_database:
                charges = await work.apply(tx, ledger.db, now, optimistic)
            elif batch.settles:
                charges = work.without_database()
        for account_id, model in work.consumed_grants:
            ledger._consumed_grants.add((account_id, model))
        for future, outcome in results:
            if future.cancelled():
                if isinstance(outcome, Admission) and outcome.reserved:
                    # Its caller left while the hold was written (a disconnect cancels the
                    # request): nobody will settle it, so it is voided in the next batch.
                    self.put(
                        SettleJob(outcome, None, "canceled_before_start", future.get_loop().create_future())
                    )
            elif not future.done():
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        for job in batch.settles:
            if not job.done.done():
                job.done.set_result(charges[job.admission.task_id])

    async def _admit_all(
        self, tx: BatchTransaction, jobs: Sequence[AdmitJob], now: datetime, optimistic: bool
    ) -> list[tuple[asyncio.Future[Admission], Admission | BaseException]]:
        ledger = self.ledger
        out: list[tuple[asyncio.Future[Admission], Admission | BaseException]] = []
        needs_hold: list[AdmitJob] = []
        tried: set[tuple[int, str]] = set()  # one grant attempt per (account, model) per batch
        for job in jobs:
            grant = (job.account_id, job.base.model)
            reserved = False
            if grant not in tried and ledger._grant_may_apply(
                job.account_id, job.account_created_at, job.base.model, now
            ):
                tried.add(grant)
                reserved = await ledger._reserve_grant(tx, job.account_id, job.base.model, job.task_id, now)
            if reserved:
                cap = ledger.settings.free_call_output_cap
                asked = job.base.output_cap  # the request's own max_tokens
                capped = cap if asked is None else min(asked, cap)
                out.append(
                    (
                        job.done,
                        msgspec.structs.replace(job.base, free_call=True, output_cap=capped, reserved=True),
                    )
                )
            else:
                needs_hold.append(job)
        held: list[AdmitJob] = []
        by_account: dict[int, list[AdmitJob]] = {}
        for job in needs_hold:
            by_account.setdefault(job.account_id, []).append(job)
        for account_id, group in sorted(by_account.items()):  # one lock order for all writers
            # One guarded UPDATE for the whole group when it fits (the usual case under load);
            # otherwise one per job, in arrival order, so exactly the ones that fit get in.
            total = sum(j.amount for j in group)
            if optimistic:
                ledger._hold_queued(tx, account_id, total, now)
                held.extend(group)
                continue
            if len(group) > 1 and await ledger._hold(tx, account_id, total, now):
                held.extend(group)
                continue
            for job in group:
                if await ledger._hold(tx, account_id, job.amount, now):
                    held.append(job)
                else:
                    out.append((job.done, await ledger._refusal(tx, account_id, job.amount)))
                    self._refused(account_id)
        if held:
            ttl = timedelta(seconds=ledger.settings.hold_ttl_seconds)
            tx.add(
                INSERT_ENTRIES,
                [
                    entry_row(
                        account_id=j.account_id,
                        entry_type=EntryType.HOLD,
                        amount_micros=j.amount,
                        idempotency_key=task_key(j.task_id, EntryType.HOLD),
                        created_at=now,
                        task_id=j.task_id,
                    )
                    for j in held
                ],
            )
            tx.add(
                _INSERT_HOLDS,
                [
                    {
                        "task_id": j.task_id,
                        "account_id": j.account_id,
                        "amount_micros": j.amount,
                        "status": "open",
                        "created_at": now,
                        "expires_at": now + ttl,
                    }
                    for j in held
                ],
            )
            for job in held:
                out.append(
                    (job.done, msgspec.structs.replace(job.base, hold_micros=job.amount, reserved=True))
                )
        return out

    def _worth_a_bet(self, batch: _Batch) -> bool:
        if not self._refused_at:
            return True
        return all(self.bets_on(j.account_id) for j in batch.admits)

    def _refused(self, account_id: int) -> None:
        now = time.monotonic()
        if len(self._refused_at) > 10_000:  # bounded: forget the ones past the window
            horizon = now - _NO_BET_SECONDS
            self._refused_at = {a: t for a, t in self._refused_at.items() if t >= horizon}
        self._refused_at[account_id] = now


async def _lock_accounts(tx: BatchTransaction, batch: _Batch, work: Settlement) -> None:
    """Concurrent PostgreSQL batches lock accounts in id order within each phase; a batch with
    both admissions and settlements on several accounts would lock across the two phases out of
    order, so it takes all of its account locks up front, in order (no deadlock between writers)."""
    ids = {j.account_id for j in batch.admits}
    ids.update(p.admission.account_id for p in work.posts)
    ids.update(v.admission.account_id for v in work.voids)
    if len(ids) > 1:
        await tx.run(_LOCK_ACCOUNTS, {"l_ids": sorted(ids)})


_LOCK_ACCOUNTS = (
    select(accounts.c.id)
    .where(accounts.c.id.in_(bindparam("l_ids", expanding=True)))
    .order_by(accounts.c.id)
    .with_for_update()
)


def _fail(job: AdmitJob | SettleJob, exc: BaseException) -> None:
    if not job.done.done():
        job.done.set_exception(exc)


__all__ = ["AdmitJob", "GroupCommitter", "SettleJob", "hold_micros"]
