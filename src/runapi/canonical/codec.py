"""What a surface is: a codec between one client dialect and the canonical model.

A surface decodes request bytes into a `Decoded` (canonical request + options only that dialect
has), renders a `Completion` as its response body, encodes canonical events as its SSE frames, and
renders `RunapiError`s in its error envelope. It knows nothing of upstreams, billing or storage.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from runapi.canonical import ChatRequest, Completion, Event
from runapi.errors import RunapiError


class GatewayOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Gateway extras any surface accepts in its body (runapi-contract §3.4, §4.1)."""

    callback_url: str | None = None
    webhook_events_filter: tuple[str, ...] | None = None
    background: bool = False  # Responses `background: true`
    store_input: bool = False  # Responses `store: true`: the one case inputs are kept
    previous_response_id: str | None = None


class Decoded(msgspec.Struct, frozen=True, kw_only=True):
    request: ChatRequest
    gateway: GatewayOptions = GatewayOptions()
    include_usage: bool = False  # Chat `stream_options.include_usage`
    requested_model: str = ""  # the name the client sent (an alias stays an alias in replies)


class ResponseMeta(msgspec.Struct, kw_only=True):
    """Per-request facts a codec needs to render ids, timestamps and cost."""

    surface_id: str
    task_id: str
    request_id: str
    model: str
    created: int  # Unix seconds
    include_usage: bool = False
    cost_usd: float | None = None  # filled in at settle, before the terminal frame
    input_token_estimate: int = 0


class RateLimitView(msgspec.Struct, frozen=True, kw_only=True):
    """Limiter state at admission, rendered as headers by each surface."""

    requests_limit: int
    requests_remaining: int
    requests_reset_s: float
    input_tokens_limit: int
    input_tokens_remaining: int
    input_tokens_reset_s: float
    output_tokens_limit: int
    output_tokens_remaining: int
    output_tokens_reset_s: float


class StreamEncoder(Protocol):
    content_type: str

    def start(self) -> bytes:
        """Frames sent as soon as the stream opens (before the first upstream byte)."""
        ...

    def event(self, event: Event) -> bytes:
        """Frames for one canonical event (may be empty)."""
        ...

    def finish(self, completion: Completion) -> bytes:
        """Terminal frames: finish reason, usage with cost, terminator."""
        ...

    def error(self, error: RunapiError) -> bytes:
        """An in-stream error frame, after the 200 status line has gone out."""
        ...

    def keepalive(self) -> bytes: ...


class Surface(Protocol):
    endpoint: str  # task endpoint name: chat.completions | responses | messages
    id_prefix: str  # chatcmpl- | resp_ | msg_

    def decode(self, body: bytes) -> Decoded:
        """Parse and validate; raise `InvalidRequest` with `param` naming the bad field."""
        ...

    def render(self, completion: Completion, meta: ResponseMeta) -> bytes: ...

    def stream_encoder(self, meta: ResponseMeta, decoded: Decoded) -> StreamEncoder: ...

    def render_error(self, error: RunapiError, request_id: str) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and extra headers (e.g. retry-after) for an error before any stream."""
        ...

    def rate_limit_headers(self, view: RateLimitView) -> dict[str, str]: ...
