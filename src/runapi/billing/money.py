"""Integer micro-dollars and the few places where they become decimal USD or cents.

1 µ$ = $0.000001. Every amount the ledger stores is an integer number of micro-dollars; a price of
"USD per 1M tokens" is therefore exactly "micro-dollars per token". Rounding happens once per
task (half-up, to µ$) and once per invoice (half-up, to cents); the `*_cents` compatibility fields
of RunAPI's SDK have their own documented rounding.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000
MICROS_PER_CENT = 10_000
_ONE = Decimal(1)


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def round_up(value: Decimal) -> int:
    return int(value.quantize(_ONE, rounding=ROUND_CEILING))


def usd_to_micros(usd: Decimal | str | int) -> int:
    """Exact USD → µ$; more than six decimals is an error, not a silent rounding."""
    scaled = Decimal(usd) * MICROS_PER_USD
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{usd} USD is not a whole number of micro-dollars")
    return int(scaled)


def micros_to_usd(micros: int) -> str:
    """`588` → `"0.000588"`: the exact decimal string of the task object's `cost.amount`."""
    return str((Decimal(micros) / MICROS_PER_USD).quantize(Decimal("0.000001")))


def micros_to_float_usd(micros: int) -> float:
    """For OpenRouter-style number fields (`usage.cost`, `total_cost`)."""
    return micros / MICROS_PER_USD


def cents_half_up(micros: int) -> int:
    return round_half_up(Decimal(micros) / MICROS_PER_CENT)


def cents_truncated(micros: int) -> int:
    """Toward zero, so a balance never shows money that is not there."""
    return int((Decimal(micros) / MICROS_PER_CENT).to_integral_value(rounding=ROUND_DOWN))


def cents_rounded_up(micros: int) -> int:
    """A quote never understates the hold."""
    return round_up(Decimal(micros) / MICROS_PER_CENT)


def usd_string_from_micros_cents(micros: int) -> str:
    """The invoice total: µ$ rounded half-up to cents once, as `"27.72"`."""
    cents = cents_half_up(micros)
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def usd_per_1m_to_cents(price: Decimal) -> int:
    """$0.375 per 1M → 38 ¢ (half-up): RunAPI's SDK types these fields as integers."""
    return round_half_up(price * 100)
