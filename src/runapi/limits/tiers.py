"""Usage tiers as data: qualification, per-class limits and promotion rules (runapi-contract §6.1).

The shipped table is `tiers.toml`; the settings file may override it (`[[limits.tiers]]`). A tier
is reached automatically from cumulative paid spend plus days since the first payment, and is
never lowered automatically. Per-key operator overrides can only lower a tier's values.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import msgspec

from runapi.settings import LimitSettings

log = logging.getLogger(__name__)

MICROS_PER_USD = 1_000_000
ALL_CLASSES = "*"  # key in per-key overrides that applies to every model class


class LimitValues(msgspec.Struct, frozen=True, kw_only=True):
    """Per-minute budgets and the concurrency cap for one (key, model class).

    `account` holds the tier ceiling that bounds the whole account when the key's own values were
    lowered by an override; None means the account-wide buckets use these same values.
    """

    rpm: int
    itpm: int
    otpm: int
    concurrent: int
    account: LimitValues | None = None

    @property
    def account_values(self) -> LimitValues:
        return self.account or self


class LimitOverride(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An operator's per-key values for one model class (or `*`); unset fields keep the tier's."""

    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    concurrent: int | None = None


class TierSpec(msgspec.Struct, frozen=True, kw_only=True):
    tier: int
    name: str
    # None: never reached automatically (Enterprise, by contract).
    min_paid_micros: int | None
    min_days_since_first_payment: int
    # None: no monthly cap (invoiced).
    monthly_spend_cap_micros: int | None
    limits: LimitValues
    classes: dict[str, LimitValues]

    @property
    def automatic(self) -> bool:
        return self.min_paid_micros is not None

    def class_limits(self, model_class: str) -> LimitValues:
        return self.classes.get(model_class, self.limits)

    def qualifies(self, paid_total_micros: int, first_payment_at: datetime | None, now: datetime) -> bool:
        if self.min_paid_micros is None or paid_total_micros < self.min_paid_micros:
            return False
        if self.min_days_since_first_payment <= 0:
            return True
        if first_payment_at is None:
            return False
        return now - first_payment_at >= timedelta(days=self.min_days_since_first_payment)


class TierProgress(msgspec.Struct, frozen=True, kw_only=True):
    """How far an account is from its next automatic tier."""

    next_tier: int
    requires_paid_micros: int
    requires_days_since_first_payment: int
    paid_missing_micros: int
    days_missing: int
    # When the days condition holds (None until a first payment exists).
    days_met_at: datetime | None


class TierTableError(ValueError):
    """The tier table (shipped or overridden) is inconsistent."""


class _RawClassLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    concurrent: int | None = None


class _RawTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tier: int
    name: str = ""
    min_paid_usd: Decimal | None = None
    min_days_since_first_payment: int = 0
    monthly_spend_cap_usd: Decimal | None = None
    rpm: int
    itpm: int
    otpm: int
    concurrent: int
    classes: dict[str, _RawClassLimits] = msgspec.field(default_factory=dict)


def usd_to_micros(amount: Decimal) -> int:
    return int((amount * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def _spec_from_raw(raw: _RawTier) -> TierSpec:
    base = LimitValues(rpm=raw.rpm, itpm=raw.itpm, otpm=raw.otpm, concurrent=raw.concurrent)
    classes = {
        name: LimitValues(
            rpm=base.rpm if c.rpm is None else c.rpm,
            itpm=base.itpm if c.itpm is None else c.itpm,
            otpm=base.otpm if c.otpm is None else c.otpm,
            concurrent=base.concurrent if c.concurrent is None else c.concurrent,
        )
        for name, c in raw.classes.items()
    }
    for values in (base, *classes.values()):
        if min(values.rpm, values.itpm, values.otpm, values.concurrent) < 0:
            raise TierTableError(f"tier {raw.tier}: limits must not be negative")
    return TierSpec(
        tier=raw.tier,
        name=raw.name or f"Tier {raw.tier}",
        min_paid_micros=None if raw.min_paid_usd is None else usd_to_micros(raw.min_paid_usd),
        min_days_since_first_payment=raw.min_days_since_first_payment,
        monthly_spend_cap_micros=(
            None if raw.monthly_spend_cap_usd is None else usd_to_micros(raw.monthly_spend_cap_usd)
        ),
        limits=base,
        classes=classes,
    )


def merge_tier_overrides(
    shipped: Iterable[Mapping[str, Any]], overrides: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Raw TOML merge: an override with a known `tier` replaces the fields (and classes) it names."""
    merged: dict[int, dict[str, Any]] = {}
    for raw in shipped:
        merged[int(raw["tier"])] = dict(raw)
    for raw in overrides:
        if "tier" not in raw:
            raise TierTableError("every [[limits.tiers]] entry needs a `tier` number")
        number = int(raw["tier"])
        base = merged.get(number, {})
        entry = {**base, **raw}
        if "classes" in raw and "classes" in base:
            classes = {name: dict(values) for name, values in base["classes"].items()}
            for name, values in raw["classes"].items():
                classes[name] = {**classes.get(name, {}), **values}
            entry["classes"] = classes
        merged[number] = entry
    return [merged[n] for n in sorted(merged)]


class TierTable:
    """The loaded tier table. Immutable; lookups on the hot path are dict accesses."""

    def __init__(self, specs: Iterable[TierSpec]) -> None:
        ordered = sorted(specs, key=lambda s: s.tier)
        numbers = [s.tier for s in ordered]
        if not ordered or numbers[0] != 0:
            raise TierTableError("the tier table needs a tier 0 (new accounts start there)")
        if len(set(numbers)) != len(numbers):
            raise TierTableError("tier numbers must be unique")
        thresholds = [s.min_paid_micros for s in ordered if s.min_paid_micros is not None]
        if thresholds != sorted(thresholds):
            raise TierTableError("a higher tier must not require less paid spend than a lower one")
        self.tiers: tuple[TierSpec, ...] = tuple(ordered)
        self._by_number = {s.tier: s for s in ordered}
        self._automatic = tuple(s for s in ordered if s.automatic)

    @classmethod
    def from_raw(cls, raw_tiers: Iterable[Mapping[str, Any]]) -> TierTable:
        try:
            raws = [msgspec.convert(dict(r), _RawTier, strict=False) for r in raw_tiers]
        except msgspec.ValidationError as exc:
            raise TierTableError(f"invalid tier table: {exc}") from exc
        return cls(_spec_from_raw(r) for r in raws)

    @classmethod
    def shipped(cls) -> TierTable:
        return cls.from_raw(_read_shipped())

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> TierTable:
        return cls.from_raw(merge_tier_overrides(_read_shipped(), settings.tiers))

    def spec(self, tier: int) -> TierSpec:
        """The tier's row; a number between or above the table's rows gets the highest row below it."""
        found = self._by_number.get(tier)
        if found is not None:
            return found
        below = [s for s in self.tiers if s.tier <= tier]
        return below[-1] if below else self.tiers[0]

    def tier_for(
        self,
        paid_total_micros: int,
        first_payment_at: datetime | None,
        now: datetime,
        current_tier: int,
        pinned: bool,
    ) -> int:
        """The tier the account should have now. Never lower than `current_tier`; a pinned tier
        stays as the operator set it."""
        if pinned:
            return current_tier
        best = current_tier
        for spec in self._automatic:
            if spec.tier > best and spec.qualifies(paid_total_micros, first_payment_at, now):
                best = spec.tier
        return best

    def limits_for(
        self, tier: int, model_class: str, key_overrides: Mapping[str, Any] | None = None
    ) -> LimitValues:
        """The key's limits for one model class. Overrides (`{"<class>" or "*": {"rpm": ..}}`, as
        stored on the key) only ever lower the tier's values; the tier's values stay the
        account-wide ceiling."""
        ceiling = self.spec(tier).class_limits(model_class)
        if not key_overrides:
            return ceiling
        lowered = ceiling
        for scope in (ALL_CLASSES, model_class):
            override = _parse_override(key_overrides.get(scope))
            if override is not None:
                lowered = _lower(lowered, override)
        if lowered == ceiling:
            return ceiling
        return msgspec.structs.replace(lowered, account=ceiling)

    def next_tier_progress(
        self,
        paid_total_micros: int,
        first_payment_at: datetime | None,
        now: datetime,
        current_tier: int,
    ) -> TierProgress | None:
        """The next automatic tier above `current_tier` and what is missing; None at the top."""
        upcoming = [s for s in self._automatic if s.tier > current_tier]
        if not upcoming:
            return None
        nxt = upcoming[0]
        assert nxt.min_paid_micros is not None
        days = nxt.min_days_since_first_payment
        days_met_at = None if first_payment_at is None else first_payment_at + timedelta(days=days)
        if days <= 0:
            days_missing = 0
        elif days_met_at is None:
            days_missing = days
        else:
            days_missing = max(0, math.ceil((days_met_at - now) / timedelta(days=1)))
        return TierProgress(
            next_tier=nxt.tier,
            requires_paid_micros=nxt.min_paid_micros,
            requires_days_since_first_payment=days,
            paid_missing_micros=max(0, nxt.min_paid_micros - paid_total_micros),
            days_missing=days_missing,
            days_met_at=days_met_at,
        )


def parse_limit_overrides(raw: Mapping[str, Any]) -> dict[str, LimitOverride]:
    """Validate per-key overrides before storing them (admin API, CLI). Raises ValueError."""
    try:
        parsed = msgspec.convert(dict(raw), dict[str, LimitOverride])
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid limit overrides: {exc}") from exc
    for name, override in parsed.items():
        values = [v for v in msgspec.structs.astuple(override) if v is not None]
        if any(v < 0 for v in values):
            raise ValueError(f"limit overrides for {name!r} must not be negative")
    return parsed


def _parse_override(raw: Any) -> LimitOverride | None:
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, LimitOverride)
    except msgspec.ValidationError:
        # Stored by an operator; a bad entry must not fail every request of the key.
        log.warning("ignoring malformed per-key limit override: %r", raw)
        return None


def _lower(values: LimitValues, override: LimitOverride) -> LimitValues:
    def pick(current: int, wanted: int | None) -> int:
        return current if wanted is None else max(0, min(current, wanted))

    return LimitValues(
        rpm=pick(values.rpm, override.rpm),
        itpm=pick(values.itpm, override.itpm),
        otpm=pick(values.otpm, override.otpm),
        concurrent=pick(values.concurrent, override.concurrent),
    )


def _read_shipped() -> list[dict[str, Any]]:
    text = resources.files("runapi.limits").joinpath("tiers.toml").read_text(encoding="utf-8")
    tiers: list[dict[str, Any]] = tomllib.loads(text)["tiers"]
    return tiers
