"""The pages of one account: overview (balance, spend and usage plots), tasks, limits.

Everything is scoped to the session's account; an operator session (admin key) has no account and
is sent to the admin page instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from runapi.api.account import LEDGER_EXTRA
from runapi.api.common import json_response, services
from runapi.api.limits import class_limits, spent_this_month, tier_table
from runapi.api.tasks import STATUSES
from runapi.auth import Principal
from runapi.billing import Ledger
from runapi.console import charts, display
from runapi.console.http import PREFIX, page, redirect, signed_in, svg
from runapi.console.reports import (
    AccountFigures,
    ModelDay,
    account_figures,
    key_state,
    spend_per_day,
    usage_per_day,
    window,
)
from runapi.console.sessions import ConsoleSession
from runapi.console.state import console_state, task_store
from runapi.errors import NotFound
from runapi.limits.promotion import promote_if_due
from runapi.tasks.webhooks.outbox import WebhookOutbox

__all__ = ["limits", "overview", "task_json", "tasks_page"]

DAYS = 30
TASKS_PER_PAGE = 50
CHART_MODELS = 8  # more models than this share one series
OTHER = "other models"


@dataclass(frozen=True)
class BalanceBox:
    """The money figures at the top of the overview, in µ$."""

    available: int
    balance: int
    held: int
    bonus: int
    spent_today: int
    spent_this_month: int
    spent_total: int


@dataclass(frozen=True)
class ModelTotals:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_micros: int


async def _balance(
    request: web.Request, figures: AccountFigures, today_spend: int, now: datetime
) -> BalanceBox:
    """Through the ledger when the app wired one (billing's own balance rules); else the same
    figures from the account row and the ledger's charges."""
    ledger = services(request).extras.get(LEDGER_EXTRA)
    if isinstance(ledger, Ledger):
        view = await ledger.balance(figures.id)
        return BalanceBox(
            available=view.available_micros,
            balance=view.balance_micros,
            held=view.held_micros,
            bonus=view.bonus_micros,
            spent_today=view.spent_today_micros,
            spent_this_month=view.spent_this_month_micros,
            spent_total=view.spent_total_micros,
        )
    available = figures.available_micros
    return BalanceBox(
        available=available,
        balance=figures.balance_micros,
        held=figures.held_micros,
        bonus=max(0, min(figures.bonus_micros, available)),
        spent_today=today_spend,
        spent_this_month=spent_this_month(figures.spend_month, figures.spend_month_micros, now),
        spent_total=figures.spent_total_micros,
    )


def _model_totals(usage: list[ModelDay]) -> list[ModelTotals]:
    totals: dict[str, list[int]] = {}
    for row in usage:
        t = totals.setdefault(row.model, [0, 0, 0, 0])
        t[0] += row.requests
        t[1] += row.input_tokens
        t[2] += row.output_tokens
        t[3] += row.cost_micros
    out = [ModelTotals(m, *t) for m, t in totals.items()]
    return sorted(out, key=lambda t: (-t.requests, t.model))


def usage_series(
    usage: list[ModelDay], days: list[date], models: list[str], metric: str
) -> list[charts.Series]:
    """One series per model (the first `CHART_MODELS` of `models`, the rest summed as one), aligned
    to `days`. `metric`: "requests" or "tokens" (input + output)."""
    shown = set(models[:CHART_MODELS])
    names = models[:CHART_MODELS] + ([OTHER] if len(models) > CHART_MODELS else [])
    index = {d: i for i, d in enumerate(days)}
    values = {name: [0.0] * len(days) for name in names}
    for row in usage:
        i = index.get(row.day)
        if i is None:
            continue
        name = row.model if row.model in shown else OTHER
        amount = row.requests if metric == "requests" else row.input_tokens + row.output_tokens
        values[name][i] += amount
    return [charts.Series(name, values[name]) for name in names]


@signed_in
async def overview(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    principal = session.principal
    if principal is None:
        return redirect(f"{PREFIX}/admin")
    svc = services(request)
    figures = await account_figures(svc.db, principal.account_id)
    if figures is None:
        await console_state(request).sessions.close(session.token)
        return redirect(f"{PREFIX}/login")
    now = datetime.now(UTC)
    days = window(now, DAYS)
    spend = await spend_per_day(svc.db, days, principal.account_id)
    usage = await usage_per_day(svc.db, principal.account_id, days)
    totals = _model_totals(usage)
    models = [t.model for t in totals]
    labels = [display.day_label(d) for d in days]
    spend_chart = charts.line_chart(
        labels,
        [charts.Series("Spend", [display.micros_as_usd(v) for v in spend])],
        title="Spend per day (USD)",
        value_format=charts.format_usd,
        width=charts.WIDE,
    )
    requests_chart = charts.bar_chart(
        labels, usage_series(usage, days, models, "requests"), title="Requests per day by model", integer=True
    )
    tokens_chart = charts.line_chart(
        labels,
        usage_series(usage, days, models, "tokens"),
        title="Tokens per day by model (input + output)",
        integer=True,
    )
    context: dict[str, Any] = {
        "title": "Overview",
        "account": figures,
        "balance": await _balance(request, figures, spend[-1], now),
        "period": f"{days[0].isoformat()} to {days[-1].isoformat()} (UTC)",
        "spend_chart": svg(spend_chart),
        "requests_chart": svg(requests_chart),
        "tokens_chart": svg(tokens_chart),
        "totals": totals,
    }
    return page(request, "overview.html", context, session=session)


@signed_in
async def tasks_page(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    principal = session.principal
    if principal is None:
        return redirect(f"{PREFIX}/admin")
    status = request.query.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    model = (request.query.get("model") or "").strip()[:200] or None
    after = request.query.get("after") or None
    listing = await task_store(request).list_tasks(
        principal.account_id, limit=TASKS_PER_PAGE, after=after, status=status, model=model
    )
    next_url = None
    if listing.has_more and listing.records:
        query = {"after": listing.records[-1].id, "status": status or "", "model": model or ""}
        next_url = f"{PREFIX}/tasks?" + urlencode({k: v for k, v in query.items() if v})
    context: dict[str, Any] = {
        "title": "Tasks",
        # Webhooks that stopped are otherwise only a log line and an attempt's error: say so here.
        "stopped_urls": await WebhookOutbox(services(request).db).stopped_urls(principal.account_id),
        "records": listing.records,
        "next_url": next_url,
        "first_page": after is None,
        "statuses": STATUSES,
        "status": status,
        "model": model,
    }
    return page(request, "tasks.html", context, session=session)


@signed_in
async def task_json(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    """The task object of `GET /v1/tasks/{id}` for the signed-in account (the browser has the
    session cookie, not the key, so the API route itself would answer 401)."""
    principal = session.principal
    if principal is None:
        raise web.HTTPNotFound()
    try:
        record = await task_store(request).get(request.match_info["task_id"], principal.account_id)
    except NotFound as exc:
        return json_response({"error": {"message": exc.message, "code": exc.code}}, status=404)
    return json_response(record.to_api())


@signed_in
async def limits(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    svc = services(request)
    tiers = tier_table(svc)
    principal = session.principal
    if principal is None:  # the operator: the whole tier table
        table = {"title": "Limits", "tiers": tiers.tiers, "classes": _classes(request)}
        return page(request, "limits_admin.html", table, session=session)
    figures = await account_figures(svc.db, principal.account_id)
    if figures is None:
        return redirect(f"{PREFIX}/login")
    now = datetime.now(UTC)
    # As `/api/v1/me/limits` does: a tier whose waiting period ended since the last payment is
    # settled now, so this page shows what the next request gets.
    if await promote_if_due(svc.db, principal.account_id, tiers, now=now) is not None:
        svc.keys.forget_account(principal.account_id)
        figures = await account_figures(svc.db, principal.account_id) or figures
    key = await _overrides(request, principal)
    spec = tiers.spec(figures.tier)
    cap = (
        figures.monthly_cap_micros
        if figures.monthly_cap_micros is not None
        else spec.monthly_spend_cap_micros
    )
    progress = tiers.next_tier_progress(
        figures.paid_total_micros, figures.first_payment_at, now, figures.tier
    )
    context: dict[str, Any] = {
        "title": "Limits",
        "account": figures,
        "tier": spec,
        "monthly_cap": cap,
        "spent_this_month": spent_this_month(figures.spend_month, figures.spend_month_micros, now),
        "progress": progress,
        "limits": class_limits(svc.catalog, tiers, figures.tier, key),
        "has_overrides": bool(key),
    }
    return page(request, "limits.html", context, session=session)


async def _overrides(request: web.Request, principal: Principal) -> dict[str, Any] | None:
    """The key's operator overrides, read fresh (the principal was cached at sign-in)."""
    state = await key_state(services(request).db, principal.key_id)
    return None if state is None else state.limit_overrides


def _classes(request: web.Request) -> list[str]:
    seen: list[str] = []
    for model in services(request).catalog:
        if model.status != "disabled" and model.model_class not in seen:
            seen.append(model.model_class)
    return seen
