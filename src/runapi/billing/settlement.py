"""The body of a settlement transaction: post or void a batch of tasks with a fixed number of
statements, whatever the batch size.

1. Claim: `holds` rows `open → posted|voided` and `free_grants` rows `reserved → consumed|available`,
   each with one guarded UPDATE … RETURNING. Only what this transaction claimed is released, so a
   hold resolves at most once even when a settle, a void and the sweeper race.
2. One multi-row ledger INSERT that skips existing idempotency keys and returns the inserted ones.
   A charge changes the balance only when its row was inserted: a retry never charges twice.
3. One account UPDATE per account with summed deltas (executemany, in account order so concurrent
   batches lock accounts in the same order).

A post whose hold is gone (the sweeper voided it after the process stalled) is a late settlement:
its charge is posted directly, still under its idempotency key (runapi-contract §8.4).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import BigInteger, String, and_, bindparam, case, or_, select, update
from sqlalchemy.sql.dml import Insert, Update

from runapi.canonical import Usage
from runapi.catalog import Prices
from runapi.store.batch import BatchTransaction
from runapi.store.database import Database
from runapi.store.schema import accounts, free_grants, holds, ledger_entries

from .entries import (
    INSERT_ENTRIES,
    ChargeMeta,
    EntryType,
    ReleaseMeta,
    TokenCounts,
    UnitPrices,
    decode_charge_meta,
    entry_row,
    insert_entries_once,
    task_key,
)
from .pricing import PriceSchedule, cost_micros
from .records import Admission, Charge

_NO_PRICES = Prices(input=Decimal(0), output=Decimal(0))


@dataclass(slots=True)
class Post:
    admission: Admission
    cost: int
    meta: ChargeMeta

    @property
    def charge(self) -> Charge:
        return Charge(
            cost_micros=self.cost,
            free_call=self.meta.free_call,
            price_schedule_id=self.meta.price_schedule_id,
            billed=True,
        )


@dataclass(slots=True)
class Void:
    admission: Admission
    reason: str  # a ZeroChargeReason

    @property
    def charge(self) -> Charge:
        return Charge(
            cost_micros=0,
            free_call=False,
            price_schedule_id=self.admission.price_schedule_id,
            billed=False,
            zero_charge_reason=self.reason,
        )


def charge_for(admission: Admission, usage: Usage, schedule: PriceSchedule | None) -> Post:
    """Price one task from upstream usage with the schedule in effect at its creation."""
    prices = schedule.prices_for(usage.input_tokens) if schedule is not None else _NO_PRICES
    meta = ChargeMeta(
        model=admission.model,
        tokens=TokenCounts.of(usage),
        unit_prices=UnitPrices.of(prices),
        price_schedule_id=schedule.id if schedule is not None else None,
        free_call=admission.free_call,
        usage_source=usage.source,
    )
    return Post(admission, cost_micros(usage, prices), meta)


@functools.cache
def account_deltas_statement() -> Update:
    """Apply summed deltas to one account; run with executemany (`a_id`, `d_cost`, `d_released`,
    `d_month`). Bonus credit is spent first; the month counter restarts with a new month. Built
    once and reused: a reused statement keeps its cache key, so it is not rebuilt per batch."""
    a = accounts.c
    cost = bindparam("d_cost", type_=BigInteger)
    month = bindparam("d_month", type_=String)
    return (
        update(accounts)
        .where(a.id == bindparam("a_id"))
        .values(
            balance_micros=a.balance_micros - cost,
            held_micros=a.held_micros - bindparam("d_released", type_=BigInteger),
            spent_total_micros=a.spent_total_micros + cost,
            bonus_micros=case((a.bonus_micros > cost, a.bonus_micros - cost), else_=0),
            spend_month_micros=case((a.spend_month == month, a.spend_month_micros + cost), else_=cost),
            spend_month=month,
        )
    )


@dataclass
class Settlement:
    posts: list[Post] = field(default_factory=list)
    voids: list[Void] = field(default_factory=list)
    # (account, model) grants this settlement consumed; the ledger caches them after commit.
    consumed_grants: list[tuple[int, str]] = field(default_factory=list)

    def dedupe(self) -> None:
        """One outcome per task: a batch writer may see the same task twice; the first one wins."""
        seen: set[str] = set()
        posts, voids = [], []
        for p in self.posts:
            if p.admission.task_id not in seen:
                seen.add(p.admission.task_id)
                posts.append(p)
        for v in self.voids:
            if v.admission.task_id not in seen:
                seen.add(v.admission.task_id)
                voids.append(v)
        self.posts, self.voids = posts, voids

    @property
    def needs_database(self) -> bool:
        return any(p.admission.reserved or p.cost > 0 for p in self.posts) or any(
            v.admission.reserved for v in self.voids
        )

    def without_database(self) -> dict[str, Charge]:
        """Models that cost nothing and reserved nothing: the outcome is known without I/O."""
        out = {p.admission.task_id: p.charge for p in self.posts}
        out.update({v.admission.task_id: v.charge for v in self.voids})
        return out

    async def apply(
        self, tx: BatchTransaction, db: Database, now: datetime, optimistic: bool = False
    ) -> dict[str, Charge]:
        """Write the batch's posts and voids. `optimistic`: bet that every hold is still open, so
        the claims need no answer and the whole settlement goes in one trip; a hold that is not
        (swept, or settled elsewhere) fails the bet with `CheckFailed`."""
        held_posts = [p.admission for p in self.posts if p.admission.reserved and not p.admission.free_call]
        held_voids = [v.admission for v in self.voids if v.admission.reserved and not v.admission.free_call]
        grant_posts = [p.admission for p in self.posts if p.admission.reserved and p.admission.free_call]
        grant_voids = [v.admission for v in self.voids if v.admission.reserved and v.admission.free_call]
        posted = await _claim_holds(tx, held_posts, "posted", optimistic)
        voided = await _claim_holds(tx, held_voids, "voided", optimistic)
        consumed = await _claim_grants(tx, grant_posts, now, consume=True)
        returned = await _claim_grants(tx, grant_voids, now, consume=False)

        results: dict[str, Charge] = {}
        # Rows of steps this transaction claimed (a hold `open → posted|voided`): no earlier
        # settlement can have written them, since every settlement claims first. They go in as a
        # plain INSERT, so the impossible duplicate would fail the transaction instead of charging
        # twice. `checked` rows (free grants, late settlements of swept holds) may exist already;
        # their insert skips those and reports which ones are new.
        sure: list[dict[str, Any]] = []
        checked: list[dict[str, Any]] = []
        released: dict[int, int] = {}
        spent: dict[int, int] = {}  # account → charges that move its balance in this transaction
        paid_charges: dict[str, Post] = {}  # charge key → post, for checked charges
        free_charges: dict[str, Post] = {}
        unresolved: list[str] = []  # outcome decided earlier: read it back

        def release(admission: Admission, amount: int, reason: str) -> None:
            sure.append(
                entry_row(
                    account_id=admission.account_id,
                    entry_type=EntryType.HOLD_RELEASE,
                    amount_micros=-amount,
                    idempotency_key=task_key(admission.task_id, EntryType.HOLD_RELEASE),
                    created_at=now,
                    task_id=admission.task_id,
                    meta=ReleaseMeta(reason=reason),
                )
            )
            released[admission.account_id] = released.get(admission.account_id, 0) + amount

        for post in self.posts:
            adm, task_id = post.admission, post.admission.task_id
            key = task_key(task_id, EntryType.CHARGE)
            if task_id in consumed:
                # §7.4: the charge and an equal free grant, net 0, both on record.
                checked.append(_charge_row(post, now))
                checked.append(
                    entry_row(
                        account_id=adm.account_id,
                        entry_type=EntryType.FREE_GRANT,
                        amount_micros=post.cost,
                        idempotency_key=task_key(task_id, EntryType.FREE_GRANT),
                        created_at=now,
                        task_id=task_id,
                    )
                )
                free_charges[key] = post
                self.consumed_grants.append((adm.account_id, adm.model))
                results[task_id] = post.charge
                continue
            claimed = task_id in posted
            if claimed:
                release(adm, posted[task_id], "posted")
            elif not adm.reserved and post.cost == 0:
                results[task_id] = post.charge
                continue
            if post.meta.free_call:
                # The reservation is gone (swept): a late settlement is a plain, paid charge.
                post = Post(adm, post.cost, msgspec.structs.replace(post.meta, free_call=False))
            (sure if claimed else checked).append(_charge_row(post, now))
            if claimed:
                acc = adm.account_id
                spent[acc] = spent.get(acc, 0) + post.cost
            else:
                paid_charges[key] = post
            results[task_id] = post.charge

        for void in self.voids:
            adm = void.admission
            if adm.task_id in voided:
                release(adm, voided[adm.task_id], void.reason)
            elif adm.reserved and adm.task_id not in returned:
                unresolved.append(adm.task_id)  # it may have been settled already
            results[adm.task_id] = void.charge

        tx.add(INSERT_ENTRIES, sure)
        inserted: set[str] = set()
        if checked:
            # executemany form: the statement compiles once and is cached, whatever the batch size.
            result = await tx.run(entries_insert_once(db), checked)
            inserted = {r.idempotency_key for r in result}
        for key, post in paid_charges.items():
            if key in inserted:
                acc = post.admission.account_id
                spent[acc] = spent.get(acc, 0) + post.cost
            else:
                unresolved.append(post.admission.task_id)
        unresolved += [p.admission.task_id for k, p in free_charges.items() if k not in inserted]
        if unresolved:
            results.update(await _stored_charges(tx, unresolved))

        touched = sorted(set(spent) | set(released))
        if touched:
            month = now.strftime("%Y-%m")
            tx.add(
                account_deltas_statement(),
                [
                    {
                        "a_id": acc,
                        "d_cost": spent.get(acc, 0),
                        "d_released": released.get(acc, 0),
                        "d_month": month,
                    }
                    for acc in touched
                ],
            )
        return results


_INSERT_ONCE: dict[bool, Insert] = {}


def entries_insert_once(db: Database) -> Insert:
    """`insert_entries_once` for this database's dialect, built once per process."""
    stmt = _INSERT_ONCE.get(db.is_sqlite)
    if stmt is None:
        stmt = _INSERT_ONCE[db.is_sqlite] = insert_entries_once(db)
    return stmt


def _charge_row(post: Post, now: datetime) -> dict[str, Any]:
    return entry_row(
        account_id=post.admission.account_id,
        entry_type=EntryType.CHARGE,
        amount_micros=-post.cost,
        idempotency_key=task_key(post.admission.task_id, EntryType.CHARGE),
        created_at=now,
        task_id=post.admission.task_id,
        meta=post.meta,
    )


_CLAIM_CHUNK = 512  # ids per claim statement (the group commit's batch size)


@functools.cache
def _claim_holds_statement(size: int, returning: bool = True) -> Update:
    """`open → :c_status` for `size` task ids (`:c_task_0` …); returns what each claimed hold
    reserved. One fixed statement per power-of-two size, so it compiles once and runs as a
    bulk statement (one trip to the driver) instead of re-rendering an expanding IN per batch."""
    h = holds.c
    claim = (
        update(holds)
        .where(
            h.task_id.in_([bindparam(f"c_task_{i}", type_=String) for i in range(size)]), h.status == "open"
        )
        .values(status=bindparam("c_status", type_=String))
    )
    return claim.returning(h.task_id, h.amount_micros) if returning else claim


async def _claim_holds(
    tx: BatchTransaction, admissions: list[Admission], status: str, optimistic: bool
) -> dict[str, int]:
    """`open → status` for these holds; what each one claimed reserved (its amount), by task id."""
    claimed: dict[str, int] = {}
    ids = [a.task_id for a in admissions]  # distinct: `Settlement.dedupe` ran
    # The bet needs each hold's amount; an admission rebuilt after a restart (recovery voids the
    # tasks of a dead process) does not carry it, so its claim reads the amount back.
    optimistic = optimistic and all(a.hold_micros > 0 for a in admissions)
    for start in range(0, len(ids), _CLAIM_CHUNK):
        chunk = ids[start : start + _CLAIM_CHUNK]
        size = 1 << (len(chunk) - 1).bit_length()
        # Padding repeats the last id: IN (a, b, b, b) claims the same rows as IN (a, b).
        params: dict[str, Any] = {f"c_task_{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
        params["c_status"] = status
        if optimistic:
            # A hold's amount never changes after its insert, and these admissions carry it.
            tx.add_checked(_claim_holds_statement(size, returning=False), params, changes=len(chunk))
        else:
            rows = await tx.fetch(_claim_holds_statement(size), params)
            claimed.update({task_id: amount for task_id, amount in rows})
    if optimistic:
        claimed = {a.task_id: a.hold_micros for a in admissions}
    return claimed


async def _claim_grants(
    tx: BatchTransaction, admissions: list[Admission], now: datetime, *, consume: bool
) -> set[str]:
    """`reserved → consumed` (kept with its task id) or `reserved → available` (freed)."""
    if not admissions:
        return set()
    g = free_grants.c
    by_grant = {(a.account_id, a.model): a.task_id for a in admissions}
    mine = or_(
        *(and_(g.account_id == a.account_id, g.model == a.model, g.task_id == a.task_id) for a in admissions)
    )
    values: dict[str, Any] = {"status": "consumed", "updated_at": now}
    if not consume:
        values = {"status": "available", "task_id": None, "updated_at": now}
    result = await tx.run(
        update(free_grants)
        .where(mine, g.status == "reserved")
        .values(values)
        .returning(g.account_id, g.model)
    )
    return {by_grant[(row.account_id, row.model)] for row in result}


async def _stored_charges(tx: BatchTransaction, task_ids: list[str]) -> dict[str, Charge]:
    e = ledger_entries.c
    keys = [task_key(t, EntryType.CHARGE) for t in task_ids]
    result = await tx.run(select(e.task_id, e.amount_micros, e.meta).where(e.idempotency_key.in_(keys)))
    out = {}
    for row in result:
        meta = decode_charge_meta(row.meta)
        out[row.task_id] = Charge(
            cost_micros=-row.amount_micros,
            free_call=meta.free_call,
            price_schedule_id=meta.price_schedule_id,
            billed=True,
        )
    return out
