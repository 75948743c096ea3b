"""Build the aiohttp application: routes, startup and shutdown of the shared parts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from runapi.api.common import error_response, json_response, request_id
from runapi.auth import AccountRepository, KeyRepository
from runapi.catalog import ModelEntry, load_catalog
from runapi.errors import NotFound, RunapiError
from runapi.pipeline import Pipeline, PipelineHooks
from runapi.providers.registry import ProviderRegistry
from runapi.services import SERVICES, Services
from runapi.settings import Settings
from runapi.store.database import Database
from runapi.surfaces.base import Surface
from runapi.surfaces.openai_chat import ChatCompletionsSurface

log = logging.getLogger("runapi")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline", Pipeline)


def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url)
    catalog = load_catalog(settings.catalog_path, settings.models, settings.aliases)
    return Services(
        settings=settings,
        db=db,
        catalog=catalog,
        accounts=AccountRepository(db),
        keys=KeyRepository(db, settings.key_cache_seconds),
        providers=ProviderRegistry.from_settings(settings),
    )


def _generation_route(surface: Surface) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await request.app[PIPELINE].handle(request, surface)

    return handler


def _model_object(model: ModelEntry) -> dict[str, object]:
    created = 0
    if model.released:
        from datetime import UTC, datetime

        created = int(datetime.fromisoformat(model.released).replace(tzinfo=UTC).timestamp())
    return {"id": model.id, "object": "model", "created": created, "owned_by": model.family}


async def list_models(request: web.Request) -> web.StreamResponse:
    catalog = request.app[SERVICES].catalog
    data = [_model_object(m) for m in catalog if m.status != "disabled"]
    return json_response({"object": "list", "data": data}, headers={"x-request-id": request_id(request)})


async def get_model(request: web.Request) -> web.StreamResponse:
    catalog = request.app[SERVICES].catalog
    model = catalog.resolve(request.match_info["model_id"])
    return json_response(_model_object(model), headers={"x-request-id": request_id(request)})


async def health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gateway routes render `RunapiError` in the §5 envelope; nothing escapes as a bare 500."""
    try:
        return await handler(request)
    except RunapiError as exc:
        return error_response(exc, request_id(request))
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(NotFound(f"Unknown route {request.method} {request.path}."), request_id(request))
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        from runapi.errors import InternalError

        return error_response(InternalError("Internal error."), request_id(request))


def build_app(settings: Settings, services: Services | None = None, hooks: PipelineHooks | None = None) -> web.Application:
    services = services or build_services(settings)
    # The body limit is enforced by the pipeline with a clear 413 in the caller's dialect; the
    # framework's own cap sits above it so that it never answers first with a plain-text error.
    app = web.Application(middlewares=[errors_middleware], client_max_size=settings.max_body_bytes * 2)
    app[SERVICES] = services
    app[PIPELINE] = Pipeline(services, hooks or PipelineHooks())

    chat = ChatCompletionsSurface()
    app.router.add_post("/v1/chat/completions", _generation_route(chat))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", get_model)
    app.router.add_get("/health", health)

    async def startup(app: web.Application) -> None:
        await services.db.migrate()
        await services.providers.start()

    async def cleanup(app: web.Application) -> None:
        await services.providers.close()
        await services.db.dispose()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app

