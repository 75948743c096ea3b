"""`GET /v1/models` and `/v1/models/{id}`: OpenAI shape, or Anthropic's when the request carries
`anthropic-version` (protocols.md §4, §3.9)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from runapi.api.common import json_response, request_id, services
from runapi.catalog import ModelEntry
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface


def _created(model: ModelEntry) -> int:
    if not model.released:
        return 0
    return int(datetime.fromisoformat(model.released).replace(tzinfo=UTC).timestamp())


def openai_model(model: ModelEntry) -> dict[str, object]:
    return {"id": model.id, "object": "model", "created": _created(model), "owned_by": model.family}


def _visible(request: web.Request) -> list[ModelEntry]:
    return [m for m in services(request).catalog if m.status != "disabled"]


async def list_models(request: web.Request) -> web.StreamResponse:
    rid = request_id(request)
    models = _visible(request)
    if "anthropic-version" in request.headers:
        q = request.query
        body = AnthropicMessagesSurface.render_models(
            models,
            limit=max(1, min(1000, int(q.get("limit", "20")))) if q.get("limit", "20").isdigit() else 20,
            after_id=q.get("after_id"),
            before_id=q.get("before_id"),
        )
        return web.Response(body=body, content_type="application/json", headers={"request-id": rid})
    data = [openai_model(m) for m in models]
    return json_response({"object": "list", "data": data}, headers={"x-request-id": rid})


async def get_model(request: web.Request) -> web.StreamResponse:
    rid = request_id(request)
    model = services(request).catalog.resolve(request.match_info["model_id"])
    if "anthropic-version" in request.headers:
        body = AnthropicMessagesSurface.render_model(model)
        return web.Response(body=body, content_type="application/json", headers={"request-id": rid})
    return json_response(openai_model(model), headers={"x-request-id": rid})


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/models", list_models), web.get("/v1/models/{model_id}", get_model)]
