"""`RunapiError` → the Anthropic error envelope (protocols.md §3.7, §6.10)."""

from __future__ import annotations

import msgspec

from runapi.errors import ErrorKind, RunapiError
from runapi.surfaces.anthropic_messages import response as wire

_encoder = msgspec.json.Encoder()

# `error.type` per kind. Anthropic uses `invalid_request_error` for 4xx statuses without a type.
_TYPES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.BILLING: "billing_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.CONFLICT: "conflict_error",
    ErrorKind.GONE: "invalid_request_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.INTERNAL: "api_error",
}

# Overloaded is 503 elsewhere but 529 here: Anthropic SDKs raise `OverloadedError` on 529 only.
OVERLOADED_STATUS = 529


def error_type(error: RunapiError) -> str:
    return _TYPES[error.kind]


def status_of(error: RunapiError) -> int:
    return OVERLOADED_STATUS if error.kind is ErrorKind.OVERLOADED else error.status


def envelope(error: RunapiError, request_id: str) -> wire.ErrorOut:
    return wire.ErrorOut(
        wire.ErrorDetail(type=error_type(error), message=error.message), request_id=request_id
    )


def render_error(error: RunapiError, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    status = status_of(error)
    # The SDK reads the request id from this header, not the body (§3.7).
    headers = {"request-id": request_id}
    if error.retry_after is not None and (status in (429, OVERLOADED_STATUS) or status >= 500):
        headers["retry-after"] = str(max(1, round(error.retry_after)))
        headers["retry-after-ms"] = str(int(error.retry_after * 1000))
    if not error.retryable:
        headers["x-should-retry"] = "false"
    return status, _encoder.encode(envelope(error, request_id)), headers
