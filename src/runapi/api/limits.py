"""`GET /api/v1/me/limits`: the caller's tier, progress to the next one, limits and free calls
(runapi-contract §6.4, modelled on OpenRouter's `/api/v1/key`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec
from aiohttp import web
from sqlalchemy import select

from runapi.api.common import authenticate, json_response, request_id, services
from runapi.catalog import Catalog
from runapi.errors import NotFound
from runapi.limits.promotion import promote_if_due
from runapi.limits.tiers import MICROS_PER_USD, TierTable
from runapi.services import Services
from runapi.settings import Settings
from runapi.store.database import Database
from runapi.store.schema import accounts, free_grants

TIERS_EXTRA = "tiers"  # Services.extras key of the loaded TierTable


class NextTierRequires(msgspec.Struct, frozen=True):
    paid_total_usd: str
    days_since_first_payment: int


class Qualification(msgspec.Struct, frozen=True):
    paid_total_usd: str
    first_payment_at: str | None
    next_tier: int | None
    next_tier_requires: NextTierRequires | None


class ClassLimits(msgspec.Struct, frozen=True):
    model_class: str
    models: list[str]
    rpm: int
    itpm: int
    otpm: int
    concurrent: int


class FreeCall(msgspec.Struct, frozen=True):
    model: str
    status: str  # available | reserved | consumed | expired


class MyLimits(msgspec.Struct, frozen=True):
    tier: int
    qualification: Qualification
    monthly_spend_cap_usd: str | None
    spent_this_month_usd: str
    limits: list[ClassLimits]
    free_calls: list[FreeCall]


def tier_table(svc: Services) -> TierTable:
    """The app's tier table, loaded from the settings once and kept in `Services.extras`."""
    table = svc.extras.get(TIERS_EXTRA)
    if not isinstance(table, TierTable):
        table = TierTable.from_settings(svc.settings.limits)
        svc.extras[TIERS_EXTRA] = table
    return table


async def get_my_limits(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    svc = services(request)
    tiers = tier_table(svc)
    now = datetime.now(UTC)
    # A time condition (days since the first payment) can come due with no payment: settle it here
    # too, so what this route shows is what the next request gets.
    if await promote_if_due(svc.db, principal.account_id, tiers, now=now) is not None:
        svc.keys.forget_account(principal.account_id)
    async with svc.db.connect() as conn:
        row = (
            await conn.execute(
                select(
                    accounts.c.tier,
                    accounts.c.paid_total_micros,
                    accounts.c.first_payment_at,
                    accounts.c.created_at,
                    accounts.c.monthly_cap_micros,
                    accounts.c.spend_month,
                    accounts.c.spend_month_micros,
                ).where(accounts.c.id == principal.account_id)
            )
        ).first()
    if row is None:
        raise NotFound("The key's account no longer exists.")
    tier = int(row.tier)
    paid = int(row.paid_total_micros or 0)
    first_payment_at = _utc(row.first_payment_at)
    progress = tiers.next_tier_progress(paid, first_payment_at, now, tier)
    cap = (
        row.monthly_cap_micros
        if row.monthly_cap_micros is not None
        else tiers.spec(tier).monthly_spend_cap_micros
    )
    body = MyLimits(
        tier=tier,
        qualification=Qualification(
            paid_total_usd=usd(paid),
            first_payment_at=None if first_payment_at is None else _iso(first_payment_at),
            next_tier=None if progress is None else progress.next_tier,
            next_tier_requires=(
                None
                if progress is None
                else NextTierRequires(
                    usd(progress.requires_paid_micros), progress.requires_days_since_first_payment
                )
            ),
        ),
        monthly_spend_cap_usd=None if cap is None else usd(int(cap)),
        spent_this_month_usd=usd(spent_this_month(row.spend_month, row.spend_month_micros, now)),
        limits=class_limits(svc.catalog, tiers, tier, principal.limit_overrides),
        free_calls=await free_calls(
            svc.db, svc.catalog, svc.settings, principal.account_id, _utc(row.created_at) or now, now
        ),
    )
    return json_response(body, headers={"x-request-id": request_id(request)})


def class_limits(
    catalog: Catalog, tiers: TierTable, tier: int, overrides: Mapping[str, Any] | None
) -> list[ClassLimits]:
    by_class: dict[str, list[str]] = {}
    for model in catalog:
        if model.status != "disabled":
            by_class.setdefault(model.model_class, []).append(model.id)
    out = []
    for model_class, models in by_class.items():
        values = tiers.limits_for(tier, model_class, overrides)
        out.append(
            ClassLimits(
                model_class=model_class,
                models=models,
                rpm=values.rpm,
                itpm=values.itpm,
                otpm=values.otpm,
                concurrent=values.concurrent,
            )
        )
    return out


def spent_this_month(spend_month: str | None, spend_month_micros: int | None, now: datetime) -> int:
    """The account's month counter, the same number the postpaid cap guard compares (billing keeps
    it on the account row and restarts it with the first settlement of a new UTC month)."""
    if spend_month != now.astimezone(UTC).strftime("%Y-%m"):
        return 0
    return int(spend_month_micros or 0)


async def free_calls(
    db: Database, catalog: Catalog, settings: Settings, account_id: int, created_at: datetime, now: datetime
) -> list[FreeCall]:
    """One entry per paid model (runapi-contract §7): its grant's status, or whether it is still
    available to a young enough account."""
    if not settings.billing.free_first_call:
        return []
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                select(free_grants.c.model, free_grants.c.status).where(
                    free_grants.c.account_id == account_id
                )
            )
        ).all()
    statuses = {model: status for model, status in rows}
    eligible = (now - created_at).days < settings.billing.free_call_window_days
    out = []
    for model in catalog:
        if model.status == "disabled" or (model.prices.input == 0 and model.prices.output == 0):
            continue
        status = statuses.get(model.id, "available")
        if status == "available" and not eligible:
            status = "expired"
        out.append(FreeCall(model=model.id, status=status))
    return out


def usd(micros: int) -> str:
    """µ$ → `"12.00"` (cents, half-up), the display form of §6.4."""
    return str((Decimal(micros) / MICROS_PER_USD).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite returns naive datetimes; we store UTC
    return value


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/me/limits", get_my_limits)]
