"""The OpenAI error envelope (protocols.md §1.7), shared by Chat Completions and Responses."""

from __future__ import annotations

import msgspec

from runapi.canonical.codec import RateLimitView
from runapi.errors import ErrorKind, RateLimited, RunapiError

# OpenAI's `type` per error kind; rate limits say `requests` or `tokens` (runapi-contract §6.3).
_TYPES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "invalid_request_error",
    ErrorKind.BILLING: "insufficient_quota",
    ErrorKind.PERMISSION: "invalid_request_error",
    ErrorKind.NOT_FOUND: "invalid_request_error",
    ErrorKind.CONFLICT: "invalid_request_error",
    ErrorKind.GONE: "invalid_request_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "requests",
    ErrorKind.OVERLOADED: "server_error",
    ErrorKind.UPSTREAM: "server_error",
    ErrorKind.TIMEOUT: "server_error",
    ErrorKind.INTERNAL: "server_error",
}

_encoder = msgspec.json.Encoder()


def error_type(error: RunapiError) -> str:
    if isinstance(error, RateLimited):
        return error.limit_type
    if error.code == "insufficient_quota":
        return "insufficient_quota"
    return _TYPES[error.kind]


def error_object(error: RunapiError) -> dict[str, object]:
    body: dict[str, object] = {
        "message": error.message,
        "type": error_type(error),
        "param": error.param,
        "code": error.code,
    }
    if error.metadata:
        body["metadata"] = error.metadata
    return body


def render_openai_error(error: RunapiError, request_id: str) -> tuple[int, bytes, dict[str, str]]:
    headers = {"x-request-id": request_id}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after)))
        headers["retry-after-ms"] = str(int(error.retry_after * 1000))
    if not error.retryable:
        headers["x-should-retry"] = "false"
    return error.status, _encoder.encode({"error": error_object(error)}), headers


def stream_error_frame(error: RunapiError) -> bytes:
    """After the 200 went out, an error travels as one `data:` frame (the SDK raises APIError)."""
    return b"data: " + _encoder.encode({"error": error_object(error)}) + b"\n\n"


def _duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `20ms`."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    whole = int(seconds + 0.999)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def openai_rate_limit_headers(view: RateLimitView) -> dict[str, str]:
    # The `-tokens` trio reports whichever token bucket is more restrictive.
    if view.input_tokens_remaining * view.output_tokens_limit <= (
        view.output_tokens_remaining * view.input_tokens_limit
    ):
        t_limit, t_rem, t_reset = (
            view.input_tokens_limit,
            view.input_tokens_remaining,
            view.input_tokens_reset_s,
        )
    else:
        t_limit, t_rem, t_reset = (
            view.output_tokens_limit,
            view.output_tokens_remaining,
            view.output_tokens_reset_s,
        )
    return {
        "x-ratelimit-limit-requests": str(view.requests_limit),
        "x-ratelimit-remaining-requests": str(max(0, view.requests_remaining)),
        "x-ratelimit-reset-requests": _duration(view.requests_reset_s),
        "x-ratelimit-limit-tokens": str(t_limit),
        "x-ratelimit-remaining-tokens": str(max(0, t_rem)),
        "x-ratelimit-reset-tokens": _duration(t_reset),
    }
