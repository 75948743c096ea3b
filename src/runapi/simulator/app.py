"""The aiohttp application: routes, authentication, and the request path.

``POST /v1/chat/completions``: auth → decode → model → MiniMax's history checks → directive →
context window → requested/random errors → plan the answer → deliver it (paced).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass

import msgspec
from aiohttp import web

from .catalog import MODELS
from .chunks import build_frames
from .config import SimConfig
from .delivery import Break, Pacing, send_stream, wait_for_completion
from .directive import Directive, parse_directive
from .errors import (
    RETRYABLE,
    SimError,
    base_resp_body,
    error_for_status,
    invalid_params,
    stream_error_body,
    unauthorized,
)
from .generation import Completion, plan_completion, request_digest
from .ids import IdFactory
from .render import completion_body
from .tokens import count_prompt_tokens
from .validation import check_request
from .wire import ChatRequest, decode_request

__all__ = ["build_app"]

_JSON = "application/json; charset=utf-8"
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class _State:
    config: SimConfig
    ids: IdFactory
    models_body: bytes


_STATE = web.AppKey("runapi_simulator_state", _State)


def build_app(config: SimConfig) -> web.Application:
    """Build the simulator as an aiohttp application (mount it, or serve it with :func:`run`)."""
    app = web.Application()
    models = {
        "object": "list",
        "data": [
            {"id": m.id, "object": "model", "created": m.created, "owned_by": "minimax"}
            for m in MODELS.values()
        ],
    }
    app[_STATE] = _State(config=config, ids=IdFactory(), models_body=_encode(models))
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/health", _health)
    return app


async def _health(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', headers={"Content-Type": _JSON})


async def _list_models(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    trace_id = state.ids.new()
    headers = state.ids.headers(trace_id)
    try:
        _authenticate(request, state.config)
    except SimError as err:
        return _error_response(err, trace_id, headers)
    return web.Response(body=state.models_body, headers={**headers, "Content-Type": _JSON})


def _authenticate(request: web.Request, config: SimConfig) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    if config.api_key is not None and not hmac.compare_digest(token.encode(), config.api_key.encode()):
        raise unauthorized()


def _error_response(err: SimError, trace_id: str, headers: dict[str, str]) -> web.Response:
    body = err.body if err.body is not None else _encode(err.envelope(trace_id))
    content_type = _JSON if err.content_type == "application/json" else err.content_type
    return web.Response(
        status=err.status, body=body, headers={**headers, **err.headers, "Content-Type": content_type}
    )


def _requested_error(directive: Directive, digest: bytes, config: SimConfig) -> SimError | None:
    """``error=STATUS`` from the directive, else a random retryable one at ``error_rate``."""
    if directive.error_status is not None:
        return error_for_status(directive.error_status, variant=digest[0], retry_after=directive.retry_after)
    # Decided by the request hash, so a given request fails (or not) every time it is sent.
    if config.error_rate and int.from_bytes(digest[-8:]) / 2**64 < config.error_rate:
        status, variant = RETRYABLE[digest[-9] % len(RETRYABLE)]
        return error_for_status(status, variant=variant, retry_after=directive.retry_after)
    return None


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    config = state.config
    start = asyncio.get_running_loop().time()
    trace_id = state.ids.new()
    headers = state.ids.headers(trace_id)
    try:
        _authenticate(request, config)
        raw, chat = decode_request(await request.read())
        model = MODELS.get(chat.model)
        if model is None:
            raise invalid_params(f"unknown model '{chat.model}'")
        check_request(chat, model)
        directive = parse_directive(chat.messages)
        prompt_tokens = count_prompt_tokens(raw)
        if prompt_tokens > model.context_window:
            raise invalid_params(
                f"context window exceeds limit: {prompt_tokens} prompt tokens, {model.context_window} allowed"
            )
        digest = request_digest(raw, config.seed)
        error = _requested_error(directive, digest, config)
        if error is not None:
            raise error
        if directive.base_resp_code is not None:
            # The 200-with-error-body case: no choices, no usage, only base_resp.
            error_body = _encode(base_resp_body(directive.base_resp_code))
            return web.Response(body=error_body, headers={**headers, "Content-Type": _JSON})
        completion = plan_completion(
            chat, model, directive, config, prompt_tokens=prompt_tokens, digest=digest
        )
    except SimError as err:
        return _error_response(err, trace_id, headers)

    pacing = Pacing(
        start=start,
        ttft=(directive.ttft_ms if directive.ttft_ms is not None else config.ttft_ms) / 1000,
        tps=directive.tps if directive.tps is not None else config.tps,
    )
    if chat.stream:
        return await _stream(request, chat, completion, directive, config, pacing, trace_id, headers)
    await wait_for_completion(pacing, completion.completion_tokens)
    if directive.disconnect_after is not None:
        # No status line at all: the client sees the server hang up.
        if request.transport is not None:
            request.transport.close()
        return web.Response()
    body = completion_body(
        completion,
        response_id=trace_id,
        created=int(time.time()),
        model=chat.model,
        reasoning_split=bool(chat.reasoning_split),
    )
    return web.Response(body=_encode(body), headers={**headers, "Content-Type": _JSON})


async def _stream(
    request: web.Request,
    chat: ChatRequest,
    completion: Completion,
    directive: Directive,
    config: SimConfig,
    pacing: Pacing,
    trace_id: str,
    headers: dict[str, str],
) -> web.StreamResponse:
    brk, break_after = _break_point(directive)
    frames = build_frames(
        completion,
        response_id=trace_id,
        created=int(time.time()),
        model=chat.model,
        reasoning_split=bool(chat.reasoning_split),
        chunk_tokens=directive.chunk_tokens or config.chunk_tokens,
        include_usage=chat.include_usage,
        break_after=break_after,
    )
    response = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    error_frame = b""
    if brk == "error":
        error_frame = b"data: " + _encode(stream_error_body(directive.error_code, trace_id)) + b"\n\n"
    await send_stream(
        request,
        response,
        frames,
        pacing,
        send_done=not (config.omit_done or directive.no_done),
        brk=brk,
        error_frame=error_frame,
    )
    return response


def _break_point(directive: Directive) -> tuple[Break | None, int | None]:
    """Which break a stream takes, and after how many content tokens (the earlier one wins)."""
    disconnect, error = directive.disconnect_after, directive.error_after
    if disconnect is not None and (error is None or disconnect <= error):
        return "disconnect", disconnect
    if error is not None:
        return "error", error
    return None, None
