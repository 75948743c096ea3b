"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`, Anthropic-shaped
`GET /v1/models`) as a codec over the canonical model (protocols.md §3, §6)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from runapi.canonical import ChatRequest, Completion
from runapi.canonical.codec import Decoded, RateLimitView, ResponseMeta
from runapi.catalog.loader import ModelEntry
from runapi.errors import RunapiError
from runapi.surfaces.anthropic_messages import decode as _decode
from runapi.surfaces.anthropic_messages import errors as _errors
from runapi.surfaces.anthropic_messages import headers as _headers
from runapi.surfaces.anthropic_messages import models as _models
from runapi.surfaces.anthropic_messages import render as _render
from runapi.surfaces.anthropic_messages.response import TokenCountOut
from runapi.surfaces.anthropic_messages.stream import AnthropicStreamEncoder
from runapi.surfaces.reasoning_signature import ReasoningSigner

_encoder = msgspec.json.Encoder()


class AnthropicMessagesSurface:
    """`signing_key` signs thinking blocks so they can come back on later turns (§6.7); give
    every surface of a deployment the same key, so conversations can move between surfaces."""

    endpoint = "messages"
    id_prefix = "msg_"

    def __init__(self, signing_key: bytes) -> None:
        self.signer = ReasoningSigner(signing_key)

    def decode(self, body: bytes) -> Decoded:
        return _decode.decode(body, self.signer)

    def render(self, completion: Completion, meta: ResponseMeta) -> bytes:
        return _render.render(completion, meta, self.signer)

    def stream_encoder(self, meta: ResponseMeta, decoded: Decoded) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(meta, self.signer)

    def render_error(self, error: RunapiError, request_id: str) -> tuple[int, bytes, dict[str, str]]:
        return _errors.render_error(error, request_id)

    def rate_limit_headers(self, view: RateLimitView) -> dict[str, str]:
        return _headers.rate_limit_headers(view)

    # ------------------------------------------------------------ count_tokens and models

    def decode_count_tokens(self, body: bytes) -> ChatRequest:
        """`POST /v1/messages/count_tokens`: same body as Messages, no `max_tokens` (§3.8)."""
        return _decode.decode_count_tokens(body, self.signer)

    @staticmethod
    def render_count_tokens(input_tokens: int) -> bytes:
        return _encoder.encode(TokenCountOut(input_tokens))

    @staticmethod
    def render_models(
        entries: Sequence[ModelEntry],
        *,
        limit: int = _models.DEFAULT_LIMIT,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> bytes:
        return _models.render_models(entries, limit=limit, after_id=after_id, before_id=before_id)

    @staticmethod
    def render_model(entry: ModelEntry) -> bytes:
        return _models.render_model(entry)


__all__ = ["AnthropicMessagesSurface", "AnthropicStreamEncoder"]
