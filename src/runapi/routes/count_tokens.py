"""`POST /v1/messages/count_tokens` and `POST /v1/responses/input_tokens`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from runapi.api.common import presented_key, request_id, services
from runapi.canonical import ChatRequest
from runapi.canonical.estimate import estimate_input_tokens
from runapi.errors import RunapiError
from runapi.surfaces.anthropic_messages import AnthropicMessagesSurface
from runapi.surfaces.openai_responses import ResponsesSurface


async def _count(request: web.Request, chat: ChatRequest) -> int:
    """Exact where the provider can count locally (the embedded model), else our estimate."""
    svc = services(request)
    model = svc.catalog.resolve(chat.model)
    provider = svc.providers.get(model.upstream)
    if provider is not None:
        exact = await provider.count_tokens(chat, model)
        if exact is not None:
            return exact
    return estimate_input_tokens(chat)


def _handler(
    decode: Callable[[bytes], ChatRequest],
    render: Callable[[int], bytes],
    render_error: Callable[[RunapiError, str], tuple[int, bytes, dict[str, str]]],
) -> Callable[[web.Request], object]:
    async def handle(request: web.Request) -> web.StreamResponse:
        rid = request_id(request)
        headers = {"x-request-id": rid, "request-id": rid}
        try:
            await services(request).keys.authenticate(presented_key(request))
            body = await request.read()
            count = await _count(request, decode(body))
        except RunapiError as exc:
            status, payload, extra = render_error(exc, rid)
            return web.Response(
                body=payload, status=status, content_type="application/json", headers={**headers, **extra}
            )
        return web.Response(body=render(count), content_type="application/json", headers=headers)

    return handle


def routes(messages: AnthropicMessagesSurface, responses: ResponsesSurface) -> list[web.RouteDef]:
    return [
        web.post(
            "/v1/messages/count_tokens",
            _handler(messages.decode_count_tokens, messages.render_count_tokens, messages.render_error),  # type: ignore[arg-type]
        ),
        web.post(
            "/v1/responses/input_tokens",
            _handler(responses.decode_input_tokens, responses.render_input_tokens, responses.render_error),  # type: ignore[arg-type]
        ),
    ]
