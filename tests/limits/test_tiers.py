"""The tier table: shipped values, qualification, never demoting, pinning, overrides, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runapi.limits import LimitValues, TierTable
from runapi.limits.tiers import TierTableError, merge_tier_overrides, parse_limit_overrides
from runapi.settings import load_settings

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)
USD = 1_000_000


@pytest.fixture(scope="module")
def tiers() -> TierTable:
    return TierTable.shipped()


def test_shipped_table_matches_the_contract(tiers: TierTable) -> None:
    # runapi-contract §6.1: RPM / ITPM / OTPM / concurrent per key.
    expected = {
        0: (10, 20_000, 4_000, 2),
        1: (60, 200_000, 40_000, 8),
        2: (500, 1_000_000, 200_000, 32),
        3: (2_000, 4_000_000, 800_000, 128),
        4: (5_000, 10_000_000, 2_000_000, 512),
    }
    for tier, (rpm, itpm, otpm, concurrent) in expected.items():
        for model_class in ("standard", "highspeed", "m3"):
            assert tiers.limits_for(tier, model_class) == LimitValues(
                rpm=rpm, itpm=itpm, otpm=otpm, concurrent=concurrent
            )
    caps = {s.tier: s.monthly_spend_cap_micros for s in tiers.tiers}
    assert caps == {0: 0, 1: 100 * USD, 2: 500 * USD, 3: 2000 * USD, 4: 20_000 * USD, 5: None}
    assert not tiers.spec(5).automatic


def test_local_class_has_its_own_generous_values(tiers: TierTable) -> None:
    local = tiers.limits_for(0, "local")
    assert local.rpm > tiers.limits_for(0, "standard").rpm
    assert local.itpm > tiers.limits_for(0, "standard").itpm


def test_unknown_class_gets_the_tier_values(tiers: TierTable) -> None:
    assert tiers.limits_for(1, "some-new-class") == tiers.limits_for(1, "standard")


@pytest.mark.parametrize(
    ("paid_usd", "days", "expected"),
    [
        (0, None, 0),
        (4.99, 0, 0),
        (5, 0, 1),
        (49, 30, 1),
        (50, 6, 1),  # enough paid, not old enough yet
        (50, 7, 2),
        (200, 7, 3),
        (1000, 29, 3),
        (1000, 30, 4),
        (1_000_000, 365, 4),  # Enterprise is by contract only
    ],
)
def test_tier_for_paid_total_and_days(
    tiers: TierTable, paid_usd: float, days: int | None, expected: int
) -> None:
    first_payment = None if days is None else NOW - timedelta(days=days)
    assert tiers.tier_for(round(paid_usd * USD), first_payment, NOW, 0, False) == expected


def test_promotion_happens_the_moment_both_conditions_hold(tiers: TierTable) -> None:
    first_payment = NOW - timedelta(days=7)
    assert tiers.tier_for(50 * USD, first_payment, NOW - timedelta(seconds=1), 1, False) == 1
    assert tiers.tier_for(50 * USD, first_payment, NOW, 1, False) == 2


def test_never_demoted(tiers: TierTable) -> None:
    assert tiers.tier_for(0, None, NOW, 3, False) == 3
    assert tiers.tier_for(10 * USD, NOW, NOW, 2, False) == 2


def test_pinned_tier_stays(tiers: TierTable) -> None:
    assert tiers.tier_for(5000 * USD, NOW - timedelta(days=90), NOW, 1, True) == 1
    assert tiers.tier_for(0, None, NOW, 5, True) == 5


def test_overrides_only_lower(tiers: TierTable) -> None:
    ceiling = tiers.limits_for(1, "standard")
    lowered = tiers.limits_for(1, "standard", {"standard": {"rpm": 10, "itpm": 10_000_000}})
    assert lowered.rpm == 10
    assert lowered.itpm == ceiling.itpm  # an override above the tier is ignored
    assert (lowered.otpm, lowered.concurrent) == (ceiling.otpm, ceiling.concurrent)
    assert lowered.account == ceiling  # the account-wide buckets keep the tier's values
    assert lowered.account_values == ceiling


def test_override_for_all_classes_and_per_class(tiers: TierTable) -> None:
    overrides = {"*": {"concurrent": 3, "rpm": 30}, "m3": {"rpm": 5}}
    assert tiers.limits_for(2, "m3", overrides).rpm == 5
    assert tiers.limits_for(2, "m3", overrides).concurrent == 3
    assert tiers.limits_for(2, "standard", overrides).rpm == 30


def test_no_effective_override_returns_the_tier_values(tiers: TierTable) -> None:
    ceiling = tiers.limits_for(1, "standard")
    assert tiers.limits_for(1, "standard", {"standard": {"rpm": 10_000}}) is ceiling
    assert tiers.limits_for(1, "standard", {"m3": {"rpm": 1}}) is ceiling
    assert ceiling.account is None
    assert ceiling.account_values is ceiling


def test_malformed_override_is_ignored(tiers: TierTable) -> None:
    ceiling = tiers.limits_for(1, "standard")
    assert tiers.limits_for(1, "standard", {"standard": {"rpm": "lots"}}) == ceiling
    assert tiers.limits_for(1, "standard", {"standard": {"rpm": -5}}).rpm == 0


def test_parse_limit_overrides_validates() -> None:
    assert parse_limit_overrides({"standard": {"rpm": 5}})["standard"].rpm == 5
    with pytest.raises(ValueError, match="invalid"):
        parse_limit_overrides({"standard": {"rpms": 5}})
    with pytest.raises(ValueError, match="negative"):
        parse_limit_overrides({"*": {"concurrent": -1}})


def test_unknown_tier_number_uses_the_highest_row_below(tiers: TierTable) -> None:
    assert tiers.spec(9).tier == 5
    assert tiers.limits_for(9, "standard") == tiers.limits_for(5, "standard")


def test_next_tier_progress(tiers: TierTable) -> None:
    first_payment = NOW - timedelta(days=3)
    progress = tiers.next_tier_progress(12 * USD, first_payment, NOW, 1)
    assert progress is not None
    assert progress.next_tier == 2
    assert progress.requires_paid_micros == 50 * USD
    assert progress.requires_days_since_first_payment == 7
    assert progress.paid_missing_micros == 38 * USD
    assert progress.days_missing == 4
    assert progress.days_met_at == first_payment + timedelta(days=7)
    fresh = tiers.next_tier_progress(0, None, NOW, 0)
    assert fresh is not None
    assert (fresh.next_tier, fresh.days_missing) == (1, 0)
    assert tiers.next_tier_progress(0, None, NOW, 4) is None  # only Enterprise is above


def test_settings_override_the_shipped_table() -> None:
    settings = load_settings(
        env={},
        overrides={
            "limits.tiers": [
                {"tier": 1, "rpm": 100, "classes": {"local": {"concurrent": 1}}},
                {
                    "tier": 6,
                    "name": "Partner",
                    "min_paid_usd": "5000",
                    "rpm": 9,
                    "itpm": 9,
                    "otpm": 9,
                    "concurrent": 9,
                },
            ]
        },
    )
    table = TierTable.from_settings(settings.limits)
    assert table.limits_for(1, "standard").rpm == 100
    assert table.limits_for(1, "standard").itpm == 200_000  # fields not named are kept
    local = table.limits_for(1, "local")
    assert (local.concurrent, local.rpm) == (1, 300)  # class fields merge too
    assert table.spec(6).name == "Partner"
    assert table.tier_for(6000 * USD, NOW - timedelta(days=60), NOW, 0, False) == 6


def test_settings_file_tiers(tmp_path: Path) -> None:
    config = tmp_path / "runapi.toml"
    config.write_text("[[limits.tiers]]\ntier = 0\nrpm = 3\nclasses.m3 = { rpm = 1 }\n")
    table = TierTable.from_settings(load_settings(config, env={}).limits)
    assert table.limits_for(0, "standard").rpm == 3
    assert table.limits_for(0, "m3").rpm == 1
    assert table.limits_for(0, "m3").itpm == 20_000  # a class entry inherits unnamed fields


def test_inconsistent_tables_are_rejected() -> None:
    with pytest.raises(TierTableError, match="tier 0"):
        TierTable.from_raw([{"tier": 1, "rpm": 1, "itpm": 1, "otpm": 1, "concurrent": 1}])
    with pytest.raises(TierTableError, match="less paid"):
        TierTable.from_raw(
            [
                {"tier": 0, "min_paid_usd": "0", "rpm": 1, "itpm": 1, "otpm": 1, "concurrent": 1},
                {"tier": 1, "min_paid_usd": "50", "rpm": 1, "itpm": 1, "otpm": 1, "concurrent": 1},
                {"tier": 2, "min_paid_usd": "5", "rpm": 1, "itpm": 1, "otpm": 1, "concurrent": 1},
            ]
        )
    with pytest.raises(TierTableError, match="negative"):
        TierTable.from_raw([{"tier": 0, "rpm": -1, "itpm": 1, "otpm": 1, "concurrent": 1}])
    with pytest.raises(TierTableError, match="invalid"):
        TierTable.from_raw([{"tier": 0, "rpm": 1, "itpm": 1, "otpm": 1, "concurrent": 1, "rpn": 2}])
    with pytest.raises(TierTableError, match="needs a `tier`"):
        merge_tier_overrides([], [{"rpm": 1}])
