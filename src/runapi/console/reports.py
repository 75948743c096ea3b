"""Read-only reports for the console: account figures, spend and usage per day, admin rankings.

No repository offers these aggregates (billing, tasks and auth expose one account's balance, one
task, one page of tasks), so the console reads them with SQLAlchemy Core SELECTs of its own. It
never writes. Days are UTC days; every series is aligned to `window(...)` with zeros where nothing
happened, so a chart always shows the whole period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select

from runapi.store.database import Database
from runapi.store.schema import accounts, api_keys, ledger_entries, tasks

__all__ = [
    "AccountFigures",
    "KeyState",
    "ModelDay",
    "account_figures",
    "key_state",
    "list_accounts",
    "spend_by_account",
    "spend_by_model",
    "spend_per_day",
    "usage_per_day",
    "window",
]

# `charge` entries are negative (money leaves the balance); a free first call's `free_grant` gives
# the same amount back, so their sum is the net spend (billing.ledger's `spent_today` rule).
_SPEND_TYPES = ("charge", "free_grant")
_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class AccountFigures:
    """One `accounts` row, as the console shows it. Money in µ$."""

    id: int
    name: str
    email: str | None
    created_at: datetime
    tier: int
    postpaid: bool
    balance_micros: int
    held_micros: int
    bonus_micros: int
    paid_total_micros: int
    spent_total_micros: int
    first_payment_at: datetime | None
    monthly_cap_micros: int | None
    spend_month: str | None
    spend_month_micros: int

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros


@dataclass(frozen=True)
class KeyState:
    key_id: str
    revoked: bool
    limit_overrides: dict[str, Any] | None


@dataclass(frozen=True)
class ModelDay:
    """Tasks of one model on one UTC day."""

    day: date
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_micros: int


def window(now: datetime, days: int) -> list[date]:
    """The last `days` UTC days, oldest first, ending with today."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes; we store UTC
    return value


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _day(db: Database, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, on SQLite (text timestamps, stored in UTC) and
    PostgreSQL (timestamptz, converted to UTC before truncating)."""
    if db.is_sqlite:
        return func.date(column)
    return func.date(func.timezone("UTC", column))


def task_id_floor(at: datetime) -> str:
    """The smallest task id created at or after `at`: task ids are `task_<ULID>` and a ULID starts
    with its creation time, so a time range becomes an id range the primary key index can scan."""
    value = max(0, int(at.timestamp() * 1000))
    chars = []
    for _ in range(10):
        chars.append(_ULID_ALPHABET[value & 31])
        value >>= 5
    return "task_" + "".join(reversed(chars)) + "0" * 16


# ---------------------------------------------------------------- accounts and keys


def _figures(row: Any) -> AccountFigures:
    created = _utc(row.created_at)
    assert created is not None
    return AccountFigures(
        id=int(row.id),
        name=row.name,
        email=row.email,
        created_at=created,
        tier=int(row.tier),
        postpaid=bool(row.postpaid),
        balance_micros=int(row.balance_micros or 0),
        held_micros=int(row.held_micros or 0),
        bonus_micros=int(row.bonus_micros or 0),
        paid_total_micros=int(row.paid_total_micros or 0),
        spent_total_micros=int(row.spent_total_micros or 0),
        first_payment_at=_utc(row.first_payment_at),
        monthly_cap_micros=row.monthly_cap_micros,
        spend_month=row.spend_month,
        spend_month_micros=int(row.spend_month_micros or 0),
    )


async def account_figures(db: Database, account_id: int) -> AccountFigures | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    return None if row is None else _figures(row)


async def list_accounts(db: Database, *, after: int | None, limit: int) -> tuple[list[AccountFigures], bool]:
    """Accounts by id, a page of `limit` after the id `after`, and whether more follow."""
    query = select(accounts).order_by(accounts.c.id).limit(limit + 1)
    if after is not None:
        query = query.where(accounts.c.id > after)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_figures(r) for r in rows[:limit]], len(rows) > limit


async def key_state(db: Database, key_id: str) -> KeyState | None:
    """The key behind a session, read fresh: a revocation ends the session on its next page."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(api_keys.c.revoked_at, api_keys.c.limit_overrides).where(api_keys.c.id == key_id)
            )
        ).first()
    if row is None:
        return None
    return KeyState(key_id=key_id, revoked=row.revoked_at is not None, limit_overrides=row.limit_overrides)


# ---------------------------------------------------------------- spend and usage


async def spend_per_day(db: Database, days: Sequence[date], account_id: int | None = None) -> list[int]:
    """Net spend (µ$) per day of `days`, from the ledger's charges; all accounts when None."""
    if not days:
        return []
    e = ledger_entries.c
    day = _day(db, e.created_at).label("day")
    query = (
        select(day, func.sum(e.amount_micros).label("amount"))
        .where(e.type.in_(_SPEND_TYPES), e.created_at >= _start_of(days[0]))
        .group_by(day)
    )
    if account_id is not None:
        query = query.where(e.account_id == account_id)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    by_day = {_as_date(r.day): -int(r.amount or 0) for r in rows}
    return [by_day.get(d, 0) for d in days]


async def spend_by_account(db: Database, account_ids: Sequence[int], since: datetime) -> dict[int, int]:
    """Net spend (µ$) since `since` of each listed account (absent: nothing spent)."""
    if not account_ids:
        return {}
    e = ledger_entries.c
    query = (
        select(e.account_id, func.sum(e.amount_micros).label("amount"))
        .where(e.account_id.in_(list(account_ids)), e.type.in_(_SPEND_TYPES), e.created_at >= since)
        .group_by(e.account_id)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {int(r.account_id): -int(r.amount or 0) for r in rows}


async def usage_per_day(db: Database, account_id: int, days: Sequence[date]) -> list[ModelDay]:
    """Requests, tokens and cost per (day, model) of one account's tasks over `days`."""
    if not days:
        return []
    t = tasks.c
    since = _start_of(days[0])
    day = _day(db, t.created_at).label("day")
    query = (
        select(
            day,
            t.model,
            func.count().label("requests"),
            func.coalesce(func.sum(t.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(t.output_tokens), 0).label("output_tokens"),
            func.coalesce(func.sum(t.cost_micros), 0).label("cost_micros"),
        )
        .where(
            t.account_id == account_id,
            # The id bound lets the (account_id, id) index do the range; a day of slack covers ids
            # minted a little before their row's created_at.
            t.id >= task_id_floor(since - timedelta(days=1)),
            t.created_at >= since,
        )
        .group_by(day, t.model)
        .order_by(day, t.model)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        ModelDay(
            day=_as_date(r.day),
            model=r.model,
            requests=int(r.requests),
            input_tokens=int(r.input_tokens),
            output_tokens=int(r.output_tokens),
            cost_micros=int(r.cost_micros),
        )
        for r in rows
    ]


async def spend_by_model(db: Database, since: datetime, limit: int = 10) -> list[tuple[str, int]]:
    """The models with the most task cost (µ$) since `since`, across all accounts, highest first."""
    t = tasks.c
    total = func.coalesce(func.sum(t.cost_micros), 0).label("total")
    query = (
        select(t.model, total)
        .where(t.id >= task_id_floor(since - timedelta(days=1)), t.created_at >= since)
        .group_by(t.model)
        .order_by(total.desc(), t.model)
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(r.model, int(r.total)) for r in rows]
