"""Compose the full gateway: services, the pipeline's hooks and every route (floor 5).

`app.build_app` knows the surfaces; this module adds the packages around them: limits, billing,
tasks, skills, the console and metrics, with their background loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

import runapi
from runapi import console
from runapi.api import account as account_api
from runapi.api import admin as admin_api
from runapi.api import limits as limits_api
from runapi.api import skills as skills_api
from runapi.api import tasks as tasks_api
from runapi.app import RESPONSES, build_app, build_services
from runapi.billing import Ledger
from runapi.billing.records import Admission
from runapi.limits.limiter import build_limiter
from runapi.limits.promotion import promote_due_accounts
from runapi.limits.tiers import TierTable
from runapi.metrics import Metrics
from runapi.pipeline.gateway_hooks import GatewayHooks
from runapi.routes import responses_state
from runapi.services import Services
from runapi.settings import Settings
from runapi.skills import SkillCatalog
from runapi.surfaces import request_json_schemas
from runapi.tasks.history import ResponseHistory
from runapi.tasks.service import TaskRecord, Tasks

log = logging.getLogger("runapi")

METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
_BACKGROUND: web.AppKey[list[asyncio.Task[None]]] = web.AppKey("background", list)
_STOP: web.AppKey[asyncio.Event] = web.AppKey("stop", asyncio.Event)


def build_gateway(settings: Settings, services: Services | None = None) -> web.Application:
    services = services or build_services(settings)
    tiers = TierTable.from_settings(settings.limits)
    services.extras[limits_api.TIERS_EXTRA] = tiers
    metrics = Metrics()
    tasks = Tasks(services.db, settings)
    history = ResponseHistory(services.db, settings.tasks.retention_days)
    services.extras["tasks"] = tasks
    hooks = GatewayHooks(
        settings=settings,
        limiter=build_limiter(settings),
        tiers=tiers,
        tasks=tasks,
        history=history,
        metrics=metrics,
    )
    app = build_app(settings, services, hooks)
    app[METRICS] = metrics
    services.extras["skills"] = SkillCatalog(
        services.catalog, settings.base_url, request_json_schemas(), runapi.__version__
    )
    app.router.add_routes(account_api.routes())
    app.router.add_routes(admin_api.routes())
    app.router.add_routes(limits_api.routes())
    app.router.add_routes(skills_api.routes())
    app.router.add_routes(tasks_api.routes())
    app.router.add_routes(responses_state.routes(app[RESPONSES], tasks, history))
    app.router.add_get("/metrics", _metrics_route)
    if settings.console:
        app.router.add_routes(console.routes())

    async def startup(app: web.Application) -> None:
        caps = {spec.tier: spec.monthly_spend_cap_micros for spec in tiers.tiers}
        ledger = await Ledger.start(services.db, services.catalog, settings.billing, postpaid_caps=caps)
        hooks.ledger = ledger
        services.extras[account_api.LEDGER_EXTRA] = ledger

        async def void_orphans(records: list[TaskRecord]) -> None:
            """Tasks of a dead process: release whatever admission reserved for them."""
            for record in records:
                for free_call in (False, True):  # a hold or a free-grant reservation, never both
                    await ledger.void(
                        Admission(
                            task_id=record.id,
                            account_id=record.account_id,
                            model=record.model,
                            hold_micros=0,
                            free_call=free_call,
                            output_cap=None,
                            created_at=record.created_at,
                            reserved=True,
                        ),
                        "failed",
                    )

        await tasks.start(on_orphans=void_orphans)
        stop = asyncio.Event()
        app[_STOP] = stop
        app[_BACKGROUND] = [
            asyncio.create_task(ledger.run_sweeper(stop), name="hold-sweeper"),
            asyncio.create_task(_promotions(services, tiers, stop, settings.billing.sweep_interval_seconds)),
        ]

    async def cleanup(app: web.Application) -> None:
        app[_STOP].set()
        for task in app[_BACKGROUND]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await tasks.close()
        if hooks.limiter is not None:
            await hooks.limiter.aclose()

    app.on_startup.append(startup)
    # Before app.py's cleanup closes the database and the providers.
    app.on_cleanup.insert(0, cleanup)
    return app


async def _promotions(services: Services, tiers: TierTable, stop: asyncio.Event, interval: float) -> None:
    """Tier conditions that depend on time (days since first payment) come due without a request."""
    while not stop.is_set():
        try:
            for promotion in await promote_due_accounts(services.db, tiers):
                services.keys.forget_account(promotion.account_id)
        except Exception:
            log.exception("tier promotion sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _metrics_route(request: web.Request) -> web.StreamResponse:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})
