"""Pure arithmetic for the report: percentiles, ratios, growth. No I/O, no clocks (unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct`-th percentile (0-100) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError("pct must be between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/mean/max of durations given in seconds, reported in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": (sum(ms) / len(ms)) if ms else None,
        "max": max(ms) if ms else None,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either side is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def difference(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None:
        return None
    return value - baseline


def cpu_us_per_request(cpu_seconds: float, requests: int) -> float | None:
    """Server CPU time spent per completed request, in microseconds."""
    if requests <= 0:
        return None
    return cpu_seconds * 1_000_000 / requests


def growth_pct(before: float | None, after: float | None) -> float | None:
    """Relative change from `before` to `after`, in percent."""
    if before is None or after is None or before == 0:
        return None
    return (after - before) * 100.0 / before


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` split into `parts` integers differing by at most one (first ones larger)."""
    if parts <= 0:
        raise ValueError("parts must be positive")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
