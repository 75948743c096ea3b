"""How the console writes money, counts and times (Jinja filters, also used by the chart code).

Money arrives as integer micro-dollars. Balances are cut toward zero to the cent, like
`/api/v1/me/balance`, so the console never shows money that is not there; spend is rounded half-up
to the cent, like invoices; a single task's cost is shown exactly (six decimals).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from runapi.billing.money import MICROS_PER_USD, cents_half_up, cents_truncated, micros_to_usd

__all__ = [
    "count",
    "day_label",
    "iso_time",
    "micros_as_usd",
    "per_1m",
    "usd_balance",
    "usd_exact",
    "usd_spend",
    "utc_date",
    "utc_time",
]


def _cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{part:02d}"


def usd_balance(micros: int | None) -> str:
    return "—" if micros is None else _cents(cents_truncated(micros))


def usd_spend(micros: int | None) -> str:
    return "—" if micros is None else _cents(cents_half_up(micros))


def usd_exact(micros: int | None) -> str:
    if micros is None:
        return "—"
    text = micros_to_usd(abs(micros))
    return ("-$" if micros < 0 else "$") + text


def per_1m(price: Decimal) -> str:
    """A catalog price in USD per 1M tokens: `$0.30`, `$0.375`."""
    text = f"{price:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def utc_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_date(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d")


def iso_time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_label(value: date) -> str:
    """`04-07` for a chart axis (the page says which period the chart covers)."""
    return value.strftime("%m-%d")


def micros_as_usd(micros: int) -> float:
    """For chart scales only (a float is fine for pixels, never for money)."""
    return micros / MICROS_PER_USD
