"""OpenAI Chat Completions (`POST /v1/chat/completions`) as a codec."""

from __future__ import annotations

from runapi.canonical import Completion
from runapi.canonical.codec import Decoded, RateLimitView, ResponseMeta
from runapi.errors import RunapiError
from runapi.surfaces.openai_chat import decode as _decode
from runapi.surfaces.openai_chat import encode as _encode
from runapi.surfaces.openai_errors import openai_rate_limit_headers, render_openai_error


class ChatCompletionsSurface:
    endpoint = "chat.completions"
    id_prefix = "chatcmpl-"

    def decode(self, body: bytes) -> Decoded:
        return _decode.decode(body)

    def render(self, completion: Completion, meta: ResponseMeta) -> bytes:
        return _encode.render(completion, meta)

    def stream_encoder(self, meta: ResponseMeta, decoded: Decoded) -> _encode.ChatStreamEncoder:
        return _encode.ChatStreamEncoder(meta, decoded)

    def render_error(self, error: RunapiError, request_id: str) -> tuple[int, bytes, dict[str, str]]:
        return render_openai_error(error, request_id)

    def rate_limit_headers(self, view: RateLimitView) -> dict[str, str]:
        return openai_rate_limit_headers(view)


__all__ = ["ChatCompletionsSurface"]
