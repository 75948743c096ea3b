"""The part of a chat-completions request body the simulator reads, as typed structs.

Fields the simulator has no use for are accepted and ignored, as MiniMax does. Messages stay
plain dicts: the history checks in :mod:`.validation` want to report MiniMax's own messages
rather than a schema library's.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import invalid_params

__all__ = ["ChatRequest", "FunctionDef", "StreamOptions", "Tool", "decode_request"]


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class FunctionDef(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    # Kept as Any: MiniMax rejects `strict: null` and we want to report that ourselves.
    strict: Any = msgspec.UNSET


class Tool(msgspec.Struct, kw_only=True):
    type: str = "function"
    function: FunctionDef


class ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    tools: list[Tool] | None = None
    tool_choice: Any = None
    reasoning_split: bool | None = None
    thinking: Any = None
    reasoning_effort: Any = None
    n: int | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def output_budget(self) -> int | None:
        # When both are sent, max_completion_tokens wins (protocols §5.3).
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


_decoder = msgspec.json.Decoder()


def decode_request(body: bytes) -> tuple[dict[str, Any], ChatRequest]:
    """Decode a request body into the raw object (for hashing and counting) and the typed view.

    Raises the 400/2013 :class:`SimError` MiniMax answers for bodies it cannot read.
    """
    try:
        raw = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise invalid_params(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise invalid_params("request body must be a JSON object")
    try:
        request = msgspec.convert(raw, ChatRequest)
    except msgspec.ValidationError as exc:
        raise invalid_params(str(exc)) from exc
    return raw, request
