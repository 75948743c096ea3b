"""Prices → micro-dollars: the cost of a task, the hold at admission, and the price schedules.

The catalog is the source of prices; at startup its prices are written to `price_schedules`
(idempotently), then every row is held in memory by a `PriceBook`, so the hot path never queries
for a price. A task is priced with the row in effect at its creation time (runapi-contract §8.1).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from runapi.canonical import Usage
from runapi.catalog import Catalog, InputTier, ModelEntry, Prices
from runapi.errors import InternalError
from runapi.store.database import Database
from runapi.store.schema import price_schedules

from .money import round_half_up, round_up

log = logging.getLogger(__name__)

# Any constant: it only has to be the same in every process seeding the same database.
_SEED_LOCK_ID = 727_002


def cost_micros(usage: Usage, prices: Prices) -> int:
    """runapi-contract §8.2: sum the token classes exactly, round once, half-up, to µ$.

    USD per 1M tokens is µ$ per token, so each class is simply tokens x price.
    """
    exact = (
        usage.uncached_input_tokens * prices.input
        + usage.cached_input_tokens * prices.cache_read
        + usage.cache_write_tokens * prices.cache_write
        + usage.output_tokens * prices.output
    )
    return round_half_up(exact)


def hold_output_tokens(model: ModelEntry, est_input_tokens: int, max_output: int | None) -> int:
    """The output the hold assumes: the client's cap (or the model's hold cap), within the context."""
    cap = max_output if max_output is not None else model.output_cap_for_hold
    return max(0, min(cap, model.context_window - est_input_tokens))


def hold_micros(
    model: ModelEntry, est_input_tokens: int, max_output: int | None, prices: Prices | None = None
) -> int:
    """runapi-contract §8.4: the worst-case cost, rounded UP so the hold never understates it.

    `prices` defaults to the catalog's (input-tier aware); the ledger passes the schedule in effect.
    """
    prices = prices if prices is not None else model.prices_for(est_input_tokens)
    worst = est_input_tokens * prices.input + hold_output_tokens(model, est_input_tokens, max_output) * (
        prices.output
    )
    return round_up(worst)


def is_free(prices: Prices) -> bool:
    return not (prices.input or prices.output or prices.cache_read or prices.cache_write)


class PriceSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """One `price_schedules` row, decoded: exact decimal prices and optional input-length tiers."""

    id: int
    model: str
    currency: str
    prices: Prices
    input_tiers: tuple[InputTier, ...]
    effective_from: datetime

    def prices_for(self, input_tokens: int) -> Prices:
        """M3 costs more above its input threshold; the highest tier the input exceeds applies."""
        chosen = self.prices
        for tier in sorted(self.input_tiers, key=lambda t: t.above_input_tokens):
            if input_tokens > tier.above_input_tokens:
                chosen = tier.prices
        return chosen

    @property
    def free(self) -> bool:
        return is_free(self.prices) and all(is_free(t.prices) for t in self.input_tiers)


class PriceBook:
    """Every price schedule in memory, per model ordered by `effective_from`. Lookups are a bisect."""

    def __init__(self, schedules: Iterable[PriceSchedule]) -> None:
        self._by_id: dict[int, PriceSchedule] = {}
        self._by_model: dict[str, list[PriceSchedule]] = {}
        self._starts: dict[str, list[datetime]] = {}
        for schedule in schedules:
            self._by_id[schedule.id] = schedule
            self._by_model.setdefault(schedule.model, []).append(schedule)
        for model, rows in self._by_model.items():
            rows.sort(key=lambda s: s.effective_from)
            self._starts[model] = [s.effective_from for s in rows]

    @classmethod
    async def load(cls, db: Database, catalog: Catalog | None = None) -> PriceBook:
        """Seed the catalog's prices (when given), then read every schedule."""
        if catalog is not None:
            await seed_price_schedules(db, catalog)
        async with db.connect() as conn:
            rows = (await conn.execute(select(price_schedules))).all()
        return cls(_decode_row(row._mapping) for row in rows)

    def schedule_for(self, model: str, at: datetime) -> PriceSchedule | None:
        """The row in effect at `at`. Before the first row, the first row applies (a catalog dated
        later than the oldest task must not leave that task unpriced)."""
        rows = self._by_model.get(model)
        if not rows:
            return None
        index = bisect.bisect_right(self._starts[model], at) - 1
        return rows[max(index, 0)]

    def price_for(self, model: str, at: datetime, input_tokens: int = 0) -> tuple[int, Prices]:
        schedule = self.schedule_for(model, at)
        if schedule is None:
            raise InternalError(f"No price schedule for model {model!r}.")
        return schedule.id, schedule.prices_for(input_tokens)

    def by_id(self, schedule_id: int) -> PriceSchedule | None:
        return self._by_id.get(schedule_id)

    def current(self, at: datetime) -> list[PriceSchedule]:
        """One schedule per model: the one in effect at `at`, ordered by model id."""
        out = []
        for model in sorted(self._by_model):
            schedule = self.schedule_for(model, at)
            if schedule is not None:
                out.append(schedule)
        return out


# ---------------------------------------------------------------- seeding


def _tiers_json(tiers: Iterable[InputTier]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(t) for t in tiers]


def _decode_row(row: Any) -> PriceSchedule:
    effective = row["effective_from"]
    if effective.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC
        effective = effective.replace(tzinfo=UTC)
    return PriceSchedule(
        id=int(row["id"]),
        model=row["model"],
        currency=row["currency"],
        prices=Prices(
            input=Decimal(row["input_per_1m"]),
            output=Decimal(row["output_per_1m"]),
            cache_read=Decimal(row["cached_input_per_1m"]),
            cache_write=Decimal(row["cache_write_per_1m"]),
        ),
        input_tiers=tuple(msgspec.convert(row["input_tiers"] or [], list[InputTier], strict=False)),
        effective_from=effective,
    )


def _same_prices(schedule: PriceSchedule, model: ModelEntry) -> bool:
    # Decimal equality, so "0.3" and "0.30" are the same price.
    return schedule.prices == model.prices and schedule.input_tiers == tuple(model.input_tiers)


async def seed_price_schedules(db: Database, catalog: Catalog, now: datetime | None = None) -> int:
    """Write the catalog's prices as schedule rows; returns the number of rows inserted.

    Idempotent and safe in every process at once (one writer at a time). Rows are never rewritten:
    when an operator edits a price but keeps its `effective_from`, the new price gets a new row in
    effect from now, so tasks already priced keep theirs.
    """
    now = now or datetime.now(UTC)
    inserted = 0
    async with db.begin() as conn:
        if not db.is_sqlite:  # SQLite's BEGIN IMMEDIATE already made us the only writer
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SEED_LOCK_ID})
        existing = [_decode_row(r._mapping) for r in (await conn.execute(select(price_schedules))).all()]
        book = PriceBook(existing)
        for model in catalog:
            if model.status == "disabled" and book.schedule_for(model.id, now) is None:
                continue
            same_start = [
                s for s in existing if s.model == model.id and s.effective_from == model.effective_from
            ]
            if not same_start:
                await _insert_schedule(conn, model, model.effective_from)
                inserted += 1
                continue
            if _same_prices(same_start[0], model):
                continue
            in_effect = book.schedule_for(model.id, now)
            if in_effect is not None and _same_prices(in_effect, model):
                continue
            log.warning(
                "catalog prices of %s changed without a new effective_from; recording them from %s",
                model.id,
                now.isoformat(),
            )
            await _insert_schedule(conn, model, max(now, model.effective_from))
            inserted += 1
    return inserted


async def _insert_schedule(conn: AsyncConnection, model: ModelEntry, effective_from: datetime) -> None:
    await conn.execute(
        insert(price_schedules).values(
            model=model.id,
            currency="USD",
            input_per_1m=str(model.prices.input),
            cached_input_per_1m=str(model.prices.cache_read),
            cache_write_per_1m=str(model.prices.cache_write),
            output_per_1m=str(model.prices.output),
            input_tiers=_tiers_json(model.input_tiers) or None,
            effective_from=effective_from,
        )
    )
