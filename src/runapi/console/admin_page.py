"""The operator's page (admin key only): accounts with balances and spend, spend across the
gateway per day, and the models with the most spend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from runapi.api.common import services
from runapi.console import charts, display
from runapi.console.http import forbidden, page, signed_in, svg
from runapi.console.reports import list_accounts, spend_by_account, spend_by_model, spend_per_day, window
from runapi.console.sessions import ConsoleSession

__all__ = ["admin_page"]

DAYS = 30
ACCOUNTS_PER_PAGE = 50
TOP_MODELS = 10


@signed_in
async def admin_page(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    if not session.is_admin:
        return forbidden(request, session, "The admin page needs a sign-in with the admin key.")
    db = services(request).db
    raw_after = request.query.get("after", "")
    after = int(raw_after) if raw_after.isdigit() else None
    accounts, has_more = await list_accounts(db, after=after, limit=ACCOUNTS_PER_PAGE)
    now = datetime.now(UTC)
    days = window(now, DAYS)
    since = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    recent = await spend_by_account(db, [a.id for a in accounts], since)
    top = await spend_by_model(db, since, TOP_MODELS)
    daily = await spend_per_day(db, days)
    context: dict[str, Any] = {
        "title": "Admin",
        "accounts": accounts,
        "recent_spend": recent,
        "next_url": f"?after={accounts[-1].id}" if has_more and accounts else None,
        "first_page": after is None,
        "period": f"{days[0].isoformat()} to {days[-1].isoformat()} (UTC)",
        "top_models_chart": svg(
            charts.hbar_chart(
                [model for model, _ in top],
                [display.micros_as_usd(micros) for _, micros in top],
                title=f"Top models by spend, last {DAYS} days (USD)",
                value_format=charts.format_usd,
            )
        ),
        "spend_chart": svg(
            charts.line_chart(
                [display.day_label(d) for d in days],
                [charts.Series("Spend", [display.micros_as_usd(v) for v in daily])],
                title="Spend per day, all accounts (USD)",
                value_format=charts.format_usd,
            )
        ),
    }
    return page(request, "admin.html", context, session=session)
