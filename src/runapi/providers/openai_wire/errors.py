"""Upstream failures → our error tree, for servers with OpenAI-style error bodies.

Classification uses the HTTP status and the structured body (`error.code`), never free text, with
one exception kept in a small table: servers such as vLLM report an oversized prompt only as a 400
whose message starts with a well-known phrase.

Upstream account and credential problems are the operator's, not the client's: a 401/403 from the
upstream becomes a 502 "gateway misconfiguration", never a 401 to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from runapi.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    RunapiError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from runapi.providers.openai_wire.wire import Chunk, ErrorBody, chunk_decoder

log = logging.getLogger(__name__)

HeaderGetter = Callable[[str], str | None]
_MESSAGE_LIMIT = 500

# HTTP status → error class, for statuses that say enough on their own.
STATUS_ERRORS: dict[int, type[RunapiError]] = {
    400: InvalidRequest,
    404: ModelNotFound,
    408: UpstreamTimeout,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: UpstreamRateLimited,
    500: UpstreamError,
    502: UpstreamError,
    503: UpstreamUnavailable,
    504: UpstreamTimeout,
    529: UpstreamUnavailable,
}

# Structured `error.code` values that name the cause.
CODE_ERRORS: dict[str, type[RunapiError]] = {
    "context_length_exceeded": ContextLengthExceeded,
    "model_not_found": ModelNotFound,
    "rate_limit_exceeded": UpstreamRateLimited,
}

# Message phrases that mean "prompt too long" on servers without a structured code (vLLM, llama.cpp).
CONTEXT_PHRASES: tuple[str, ...] = (
    "maximum context length",
    "exceeds the available context size",
    "is longer than the model's context length",
)


def retry_after(header: HeaderGetter) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (an HTTP date is ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = header(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def misconfigured(detail: str) -> UpstreamError:
    log.error("upstream rejected the gateway's credentials or account: %s", detail)
    return UpstreamError(
        "Gateway misconfiguration: the upstream rejected the gateway's credentials.",
        code="upstream_misconfigured",
    )


class ErrorInfo(msgspec.Struct, frozen=True):
    """What an error body said, whatever its shape."""

    message: str
    code: str | None = None


def error_info(chunk: Chunk) -> ErrorInfo | None:
    """The error a decoded payload carries, if it is an error payload at all."""
    error = chunk.error
    if isinstance(error, ErrorBody):
        code = error.code
        return ErrorInfo(error.message[:_MESSAGE_LIMIT], None if code is None else str(code))
    if isinstance(error, str):
        return ErrorInfo(error[:_MESSAGE_LIMIT])
    if chunk.object == "error":
        return ErrorInfo(
            (chunk.message or "")[:_MESSAGE_LIMIT], None if chunk.code is None else str(chunk.code)
        )
    return None


class ErrorMapper:
    """Maps what an OpenAI-compatible upstream said to our errors. Subclass per dialect."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    def from_http(self, status: int, body: bytes, header: HeaderGetter) -> RunapiError:
        return self.from_info(status, self.parse_body(body), retry_after(header))

    def from_payload(self, chunk: Chunk) -> RunapiError | None:
        """An error inside a 200 response (in-stream error event, or an error body)."""
        info = self.info_of(chunk)
        return None if info is None else self.from_info(None, info, None)

    def info_of(self, chunk: Chunk) -> ErrorInfo | None:
        return error_info(chunk)

    def parse_body(self, body: bytes) -> ErrorInfo:
        text = body.decode("utf-8", "replace").strip()[:_MESSAGE_LIMIT]
        try:
            chunk = chunk_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return ErrorInfo(text)
        return self.info_of(chunk) or ErrorInfo(text)

    def from_info(self, status: int | None, info: ErrorInfo, wait: float | None) -> RunapiError:
        message = info.message or f"HTTP {status}"
        if status in (401, 403):
            return misconfigured(f"{self.upstream}: HTTP {status}: {message}")
        cls = CODE_ERRORS.get(info.code or "")
        if cls is None and (status == 400 or status is None) and _says_context(message):
            cls = ContextLengthExceeded
        if cls is None and status is not None:
            cls = STATUS_ERRORS.get(status) or (InvalidRequest if status < 500 else UpstreamError)
        if cls is None:
            cls = UpstreamError
        return build_error(cls, self.upstream, message, status, wait)


def _says_context(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in CONTEXT_PHRASES)


def build_error(
    cls: type[RunapiError],
    upstream: str,
    message: str,
    status: int | None,
    wait: float | None,
    metadata: dict[str, str] | None = None,
) -> RunapiError:
    """The client-facing error: the upstream's words when the client can act on them."""
    meta = {"upstream": upstream, **(metadata or {})}
    if status is not None:
        meta["upstream_status"] = str(status)
    if issubclass(cls, ModelNotFound):
        return cls(message, param="model", metadata=meta)
    if issubclass(cls, InvalidRequest | PayloadTooLarge):
        return cls(message, metadata=meta)
    if issubclass(cls, UpstreamRateLimited):
        return cls(
            f"The upstream '{upstream}' is rate limiting the gateway; retry shortly.",
            retry_after=wait,
            metadata=meta,
        )
    if issubclass(cls, UpstreamTimeout):
        return cls(f"The upstream '{upstream}' timed out: {message}", metadata=meta)
    return cls(f"The upstream '{upstream}' failed: {message}", retry_after=wait, metadata=meta)
