"""Anthropic Messages response and stream-event wire types (protocols.md §3.5-§3.7).

`type` is the msgspec tag, so it is encoded first, as Anthropic does. No struct here uses
`omit_defaults` unless it has no constant fields: `stop_reason: null` must stay on the wire.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

# ---------------------------------------------------------------- message


class TextOut(Struct, tag="text", tag_field="type"):
    text: str


class ThinkingOut(Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class ToolUseOut(Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: Any  # a JSON object


ContentOut = TextOut | ThinkingOut | ToolUseOut


class OutputTokensDetails(Struct):
    thinking_tokens: int


class UsageOut(Struct, omit_defaults=True):
    """`input_tokens` counts uncached input only (§3.5); `cost` is our USD extension (contract §8.7)."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens_details: OutputTokensDetails | None = None
    cost: float | None = None


class MessageOut(Struct, tag="message", tag_field="type"):
    id: str
    role: str
    model: str
    content: list[ContentOut]
    stop_reason: str | None
    stop_sequence: str | None
    usage: UsageOut


# ---------------------------------------------------------------- stream events


class TextDeltaOut(Struct, tag="text_delta", tag_field="type"):
    text: str


class ThinkingDeltaOut(Struct, tag="thinking_delta", tag_field="type"):
    thinking: str


class SignatureDeltaOut(Struct, tag="signature_delta", tag_field="type"):
    signature: str


class InputJSONDeltaOut(Struct, tag="input_json_delta", tag_field="type"):
    partial_json: str


BlockDelta = TextDeltaOut | ThinkingDeltaOut | SignatureDeltaOut | InputJSONDeltaOut


class MessageStart(Struct, tag="message_start", tag_field="type"):
    message: MessageOut


class Ping(Struct, tag="ping", tag_field="type"):
    pass


class ContentBlockStart(Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: ContentOut


class ContentBlockDelta(Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: BlockDelta


class ContentBlockStop(Struct, tag="content_block_stop", tag_field="type"):
    index: int


class StopInfo(Struct):
    stop_reason: str | None
    stop_sequence: str | None


class MessageDelta(Struct, tag="message_delta", tag_field="type"):
    delta: StopInfo
    usage: UsageOut


class MessageStop(Struct, tag="message_stop", tag_field="type"):
    pass


# ---------------------------------------------------------------- errors


class ErrorDetail(Struct):
    type: str
    message: str


class ErrorOut(Struct, tag="error", tag_field="type"):
    error: ErrorDetail
    request_id: str


# ---------------------------------------------------------------- count_tokens and models


class TokenCountOut(Struct):
    input_tokens: int


class ModelOut(Struct, tag="model", tag_field="type"):
    id: str
    display_name: str
    created_at: str  # RFC 3339
    lifecycle: str  # active | deprecated | retired: anthropic-sdk-python 2.10.0 requires it (§3.9)
    max_input_tokens: int
    max_tokens: int


class ModelPageOut(Struct):
    data: list[ModelOut]
    has_more: bool
    first_id: str | None
    last_id: str | None
