"""Build the aiohttp application: routes, startup and shutdown of the shared parts."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from runapi.api.common import error_response, json_response, request_id
from runapi.auth import AccountRepository, KeyRepository
from runapi.canonical.codec import Surface
from runapi.catalog import load_catalog
from runapi.errors import InternalError, InvalidRequest, NotFound, RunapiError
from runapi.ids import new_ulid
from runapi.pipeline import Pipeline, PipelineHooks
from runapi.providers.registry import ProviderRegistry
from runapi.routes import count_tokens, models
from runapi.server.aiohttp_exchange import AiohttpExchange
from runapi.server.exchange import Answer, Exchange, Reply
from runapi.server.lean import LeanHandler
from runapi.services import SERVICES, Services
from runapi.settings import Settings
from runapi.store.database import Database
from runapi.store.secrets import shared_secret
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.openai_chat import ChatCompletionsSurface
from runapi.surfaces.openai_responses import ResponsesSurface
from runapi.surfaces.reasoning_signature import ReasoningSigner

log = logging.getLogger("runapi")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline", Pipeline)
RESPONSES: web.AppKey[ResponsesSurface] = web.AppKey("responses_surface", ResponsesSurface)
#: The generation routes again, for the lean server (`runapi serve`): path → handler.
LEAN_ROUTES: web.AppKey[dict[str, LeanHandler]] = web.AppKey("lean_routes", dict)


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
        exchange = AiohttpExchange(request)
        return exchange.answer(await request.app[PIPELINE].handle(exchange, surface))

    return handler


def _lean_route(pipeline: Pipeline, surface: Surface) -> LeanHandler:
    async def handler(exchange: Exchange) -> Answer:
        return await pipeline.handle(exchange, surface)

    return handler


def internal_error_reply() -> Reply:
    """What the lean server sends when a handler raises (as `errors_middleware` does on aiohttp)."""
    rid = "req_" + new_ulid()
    error = error_response(InternalError("Internal error."), rid)
    assert isinstance(error.body, bytes)
    return Reply(error.status, {"x-request-id": rid}, error.body)


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
            return error_response(
                NotFound(f"Unknown route {request.method} {request.path}."), request_id(request)
            )
        raise
    except ConnectionResetError:
        if request.content.exception() is None:  # not the caller's body: one of our connections
            return _unhandled(request)
        # The caller closed its side before its body was complete: its error, said in case it
        # still reads (a half-closed connection), and not logged as ours.
        incomplete = InvalidRequest(
            "The connection closed before the request body was complete.", code="incomplete_body"
        )
        return error_response(incomplete, request_id(request))
    except Exception:
        return _unhandled(request)


def _unhandled(request: web.Request) -> web.StreamResponse:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(InternalError("Internal error."), request_id(request))


def build_app(
    settings: Settings, services: Services | None = None, hooks: PipelineHooks | None = None
) -> web.Application:
    services = services or build_services(settings)
    # The body limit is enforced by the pipeline with a clear 413 in the caller's dialect; the
    # framework's own cap sits above it so that it never answers first with a plain-text error.
    app = web.Application(middlewares=[errors_middleware], client_max_size=settings.max_body_bytes * 2)
    app[SERVICES] = services
    pipeline = app[PIPELINE] = Pipeline(services, hooks or PipelineHooks())

    chat = ChatCompletionsSurface()
    # Until startup reads the deployment's shared key, sign with a throwaway one.
    messages = AnthropicMessagesSurface(signing_key=os.urandom(32))
    responses = ResponsesSurface(signing_key=os.urandom(32))
    app[RESPONSES] = responses
    generation: dict[str, Surface] = {
        "/v1/chat/completions": chat,
        "/v1/messages": messages,
        "/v1/responses": responses,
    }
    for path, surface in generation.items():
        app.router.add_post(path, _generation_route(surface))
    app[LEAN_ROUTES] = {path: _lean_route(pipeline, surface) for path, surface in generation.items()}
    app.router.add_routes(count_tokens.routes(messages, responses))
    app.router.add_routes(models.routes())
    app.router.add_get("/health", health)

    async def startup(app: web.Application) -> None:
        await services.db.migrate()
        services.db.start_checkpoints()
        # Thinking signatures must verify on every worker and after restarts: one shared key.
        signer = ReasoningSigner(await shared_secret(services.db, "reasoning_signature"))
        messages.signer = responses.signer = signer
        await services.providers.start()

    async def cleanup(app: web.Application) -> None:
        await services.providers.close()
        await services.db.dispose()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
