"""OpenAI Responses (`/v1/responses` and its stored-object routes) as a codec over the canonical
model (protocols.md §2, §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from runapi.canonical import ChatRequest, Completion, Message
from runapi.canonical.codec import Decoded, RateLimitView, ResponseMeta
from runapi.errors import RunapiError
from runapi.surfaces.openai_errors import openai_rate_limit_headers, render_openai_error
from runapi.surfaces.openai_responses import decode as _decode
from runapi.surfaces.openai_responses import render as _render
from runapi.surfaces.openai_responses import stored as _stored
from runapi.surfaces.openai_responses.response import InputItemOut
from runapi.surfaces.openai_responses.stream import ResponsesStreamEncoder
from runapi.surfaces.reasoning_signature import ReasoningSigner


class ResponsesSurface:
    """`signing_key` seals reasoning into `encrypted_content` so stateless clients can send it
    back (§6.7); use the same key for every surface so conversations can move between them."""

    endpoint = "responses"
    id_prefix = "resp_"

    def __init__(self, signing_key: bytes) -> None:
        self.signer = ReasoningSigner(signing_key)

    def decode(self, body: bytes) -> Decoded:
        return _decode.decode(body, self.signer)

    def render(self, completion: Completion, meta: ResponseMeta, decoded: Decoded | None = None) -> bytes:
        """The Response object; with `decoded`, it also reports the request's scalar settings."""
        return _render.render(completion, meta, self.signer, decoded)

    def stream_encoder(self, meta: ResponseMeta, decoded: Decoded) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(meta, self.signer, _render.echo_of(decoded))

    def render_error(self, error: RunapiError, request_id: str) -> tuple[int, bytes, dict[str, str]]:
        return render_openai_error(error, request_id)

    def rate_limit_headers(self, view: RateLimitView) -> dict[str, str]:
        return openai_rate_limit_headers(view)

    # ------------------------------------------------------------ stored and background responses

    def render_state(
        self,
        meta: ResponseMeta,
        task_status: str,
        *,
        completion: Completion | None = None,
        error: RunapiError | None = None,
        decoded: Decoded | None = None,
    ) -> bytes:
        """`GET /v1/responses/{id}`, `POST .../cancel`, the `background: true` reply: the Response
        object for a task status (pending → queued, processing → in_progress, ...)."""
        return _render.render_state(
            meta, self.signer, task_status, completion=completion, error=error, decoded=decoded
        )

    def input_items(self, messages: Sequence[Message], response_id: str) -> list[InputItemOut]:
        return _stored.input_items(messages, response_id, self.signer)

    @staticmethod
    def render_input_items(
        items: Sequence[InputItemOut],
        *,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> bytes:
        return _stored.render_input_items(items, after=after, limit=limit, order=order)

    @staticmethod
    def render_deleted(response_id: str) -> bytes:
        return _stored.render_deleted(response_id)

    def decode_input_tokens(self, body: bytes) -> ChatRequest:
        """`POST /v1/responses/input_tokens`: the create body; `model` and `input` optional."""
        return _decode.decode_input_tokens(body, self.signer)

    @staticmethod
    def render_input_tokens(input_tokens: int) -> bytes:
        return _stored.render_input_tokens(input_tokens)

    @staticmethod
    def assistant_message(completion: Completion) -> Message:
        return _stored.assistant_message(completion)


__all__ = ["ResponsesStreamEncoder", "ResponsesSurface"]
