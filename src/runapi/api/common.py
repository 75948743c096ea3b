"""Shared plumbing for the `/api/v1` and `/v1/tasks` routes: auth, JSON, the §5 error envelope."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from runapi.auth import Principal
from runapi.auth.keys import presented_key as key_in_headers
from runapi.errors import AuthenticationFailed, RunapiError
from runapi.ids import new_ulid
from runapi.services import SERVICES, Services

_encoder = msgspec.json.Encoder()


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def presented_key(request: web.Request) -> str | None:
    return key_in_headers(request.headers)


async def authenticate(request: web.Request) -> Principal:
    return await services(request).keys.authenticate(presented_key(request))


def require_admin(request: web.Request) -> None:
    admin = services(request).settings.admin_key
    if not admin:
        raise AuthenticationFailed("The admin API is disabled: set RUNAPI_ADMIN_KEY to enable it.")
    if presented_key(request) != admin:
        raise AuthenticationFailed("Invalid admin key.")


REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    rid = request.get(REQUEST_ID)
    if rid is None:
        rid = "req_" + new_ulid()
        request[REQUEST_ID] = rid
    return rid


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(obj), status=status, content_type="application/json", headers=headers
    )


def error_response(error: RunapiError, rid: str) -> web.Response:
    """runapi-contract §5: `{"error": {"message", "code", "metadata"}}` on gateway routes."""
    body = {"error": {"message": error.message, "code": error.code, "metadata": error.metadata}}
    headers = {"x-request-id": rid}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after)))
    return json_response(body, status=error.status, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rendered_errors(handler: Handler) -> Handler:
    """Raise anywhere in a handler; the §5 envelope goes out with the request id (also on routes
    that no app middleware covers)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RunapiError as exc:
            return error_response(exc, request_id(request))

    return wrapped
