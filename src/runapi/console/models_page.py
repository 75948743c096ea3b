"""The catalog compare view: every model variant side by side, with price and speed charts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from runapi.api.common import services
from runapi.catalog import ModelEntry
from runapi.console import charts
from runapi.console.http import page, signed_in, svg
from runapi.console.sessions import ConsoleSession

__all__ = ["models_page", "output_price_chart", "speed_chart"]


def shown_models(models: list[ModelEntry]) -> list[ModelEntry]:
    """Disabled models are not offered, so they are not compared; the rest by family, then id."""
    return sorted((m for m in models if m.status != "disabled"), key=lambda m: (m.family, m.id))


def output_price_chart(models: list[ModelEntry]) -> str:
    return charts.hbar_chart(
        [m.id for m in models],
        [float(m.prices.output) for m in models],
        title="Output price (USD per 1M tokens)",
        value_format=charts.format_usd,
    )


def speed_chart(models: list[ModelEntry]) -> str:
    # A model without a measured speed is left out rather than drawn as zero tokens per second.
    rated = [m for m in models if m.tokens_per_second is not None]
    return charts.hbar_chart(
        [m.id for m in rated],
        [float(m.tokens_per_second or 0) for m in rated],
        title="Output speed (tokens per second)",
        colour=charts.PALETTE[4],
    )


@signed_in
async def models_page(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    models = shown_models(list(services(request).catalog))
    context: dict[str, Any] = {
        "title": "Models",
        "models": models,
        "price_chart": svg(output_price_chart(models)),
        "speed_chart": svg(speed_chart(models)),
    }
    return page(request, "models.html", context, session=session)
