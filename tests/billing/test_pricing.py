"""Cost of a task (runapi-contract §8.2), the hold (§8.4) and price schedules (§8.1)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from runapi.billing import PriceBook, cost_micros, hold_micros, seed_price_schedules
from runapi.billing.money import (
    cents_rounded_up,
    cents_truncated,
    micros_to_usd,
    usd_per_1m_to_cents,
    usd_string_from_micros_cents,
    usd_to_micros,
)
from runapi.canonical import Usage
from runapi.catalog import Catalog, ModelEntry, Prices
from runapi.store.database import Database


def test_contract_example_costs_588_micros(catalog: Catalog) -> None:
    m27 = catalog.resolve("MiniMax-M2.7")
    usage = Usage(input_tokens=1200, cached_input_tokens=800, output_tokens=350)
    assert cost_micros(usage, m27.prices) == 588  # 400 x 0.30 + 800 x 0.06 + 350 x 1.20


def test_cache_writes_and_reasoning_are_priced() -> None:
    prices = Prices(
        input=Decimal("0.30"),
        output=Decimal("1.20"),
        cache_read=Decimal("0.06"),
        cache_write=Decimal("0.375"),
    )
    usage = Usage(
        input_tokens=3000,
        cached_input_tokens=1000,
        cache_write_tokens=1000,
        output_tokens=100,
        reasoning_tokens=60,
    )
    # 1000 uncached x 0.30 + 1000 x 0.06 + 1000 x 0.375 + 100 x 1.20 (reasoning is inside output)
    assert cost_micros(usage, prices) == 300 + 60 + 375 + 120


def test_rounds_once_half_up_after_summing() -> None:
    prices = Prices(input=Decimal("0.30"), output=Decimal("1.20"))
    # 1 x 0.30 + 1 x 1.20 = 1.5 µ$: rounded once → 2. Rounding each class first would give 0 + 1.
    assert cost_micros(Usage(input_tokens=1, output_tokens=1), prices) == 2
    # Half-up, not banker's rounding: 2.5 → 3.
    half = Prices(input=Decimal("0.5"), output=Decimal("0"))
    assert cost_micros(Usage(input_tokens=5, output_tokens=0), half) == 3
    assert cost_micros(Usage(input_tokens=1, output_tokens=0), half) == 1
    # Below a half rounds down.
    assert (
        cost_micros(Usage(input_tokens=1, output_tokens=0), Prices(input=Decimal("0.49"), output=Decimal(0)))
        == 0
    )


def test_m3_input_tier_doubles_prices_above_the_threshold(catalog: Catalog) -> None:
    m3 = catalog.resolve("MiniMax-M3")
    small = Usage(input_tokens=524_288, output_tokens=1000)
    large = Usage(input_tokens=524_289, output_tokens=1000)
    assert (
        cost_micros(small, m3.prices_for(small.input_tokens))
        == round(Decimal("524288") * Decimal("0.30")) + 1200
    )
    assert (
        cost_micros(large, m3.prices_for(large.input_tokens))
        == round(Decimal("524289") * Decimal("0.60")) + 2400
    )


def test_hold_is_worst_case_and_rounded_up(catalog: Catalog) -> None:
    m27 = catalog.resolve("MiniMax-M2.7")
    assert hold_micros(m27, 1000, 1000) == 1000 * 0.30 + 1000 * 1.20
    # 1 x 0.30 + 1 x 1.20 = 1.5 → 2: a hold never understates.
    assert hold_micros(m27, 1, 1) == 2
    # No client cap: the model's cap for holds (M2.7: its max output).
    assert hold_micros(m27, 0, None) == 157_287  # 131,072 x 1.20 = 157,286.4, rounded up
    # The output the hold assumes never exceeds what is left of the context window.
    assert hold_micros(m27, m27.context_window - 10, None) == math.ceil(
        Decimal(m27.context_window - 10) * Decimal("0.30") + 10 * Decimal("1.20")
    )


def test_m3_hold_uses_its_hold_output_cap(catalog: Catalog) -> None:
    m3 = catalog.resolve("MiniMax-M3")
    assert m3.hold_output_cap == 131_072 < m3.max_output
    assert hold_micros(m3, 0, None) == math.ceil(Decimal(131_072) * Decimal("1.20"))


def test_money_conversions() -> None:
    assert micros_to_usd(588) == "0.000588"
    assert usd_to_micros("10.00") == 10_000_000
    with pytest.raises(ValueError, match="micro-dollars"):
        usd_to_micros("0.0000001")
    assert usd_string_from_micros_cents(27_718_800) == "27.72"
    assert usd_string_from_micros_cents(5_000) == "0.01"  # half a cent rounds up
    assert cents_truncated(12_349_999) == 1234
    assert cents_truncated(-5_000) == 0  # toward zero
    assert cents_rounded_up(150_001) == 16
    assert usd_per_1m_to_cents(Decimal("0.375")) == 38


def _model(model_id: str, output: str, effective: datetime) -> ModelEntry:
    return ModelEntry(
        id=model_id,
        family="test",
        upstream="minimax",
        context_window=1000,
        max_output=100,
        speed_class="standard",
        model_class="standard",
        prices=Prices(input=Decimal("0.30"), output=Decimal(output)),
        effective_from=effective,
    )


async def test_seeding_is_idempotent_and_never_rewrites_a_price(db: Database) -> None:
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    catalog = Catalog([_model("seed-model", "1.20", jan)], {})
    assert await seed_price_schedules(db, catalog, now) == 1
    assert await seed_price_schedules(db, catalog, now) == 0
    first = (await PriceBook.load(db)).schedule_for("seed-model", now)
    assert first is not None
    assert first.prices.output == Decimal("1.20")

    # The operator edits the price but keeps effective_from: the new price starts now, not in January.
    edited = Catalog([_model("seed-model", "1.50", jan)], {})
    assert await seed_price_schedules(db, edited, now) == 1
    assert await seed_price_schedules(db, edited, now + timedelta(days=1)) == 0
    book = await PriceBook.load(db)
    before, after = (
        book.schedule_for("seed-model", now - timedelta(seconds=1)),
        book.schedule_for("seed-model", now),
    )
    assert before is not None
    assert after is not None
    assert before.id == first.id
    assert before.prices.output == Decimal("1.20")
    assert after.prices.output == Decimal("1.50")
    assert after.effective_from == now

    # A dated change: a new row from that date; tasks created before keep the old price.
    dec = datetime(2026, 12, 1, tzinfo=UTC)
    assert await seed_price_schedules(db, Catalog([_model("seed-model", "2.00", dec)], {}), now) == 1
    book = await PriceBook.load(db)
    assert book.price_for("seed-model", dec - timedelta(microseconds=1))[1].output == Decimal("1.50")
    assert book.price_for("seed-model", dec)[1].output == Decimal("2.00")
    # Before the first row, the first row applies.
    assert book.price_for("seed-model", jan - timedelta(days=400))[0] == first.id


async def test_price_book_round_trips_the_catalog(prices: PriceBook, catalog: Catalog) -> None:
    now = datetime.now(UTC)
    for model in catalog:
        schedule = prices.schedule_for(model.id, now)
        assert schedule is not None
        assert schedule.prices == model.prices
        assert schedule.input_tiers == model.input_tiers
        assert prices.by_id(schedule.id) == schedule
    m3 = prices.schedule_for("MiniMax-M3", now)
    assert m3 is not None
    assert m3.prices_for(600_000).input == Decimal("0.60")
    local = prices.schedule_for("SmolLM2-135M-Instruct", now)
    assert local is not None
    assert local.free
    assert msgspec.json.encode(m3.prices)  # decimals encode without adapters
