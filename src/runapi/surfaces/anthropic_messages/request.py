"""Anthropic Messages request wire types (protocols.md §3.2-§3.4).

Unknown fields (`cache_control`, `service_tier`, `container`, `context_management`, ...) are
accepted and dropped, as §3.2 allows. Field order follows the Anthropic API reference.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

# ---------------------------------------------------------------- content blocks


class TextBlock(Struct, tag="text", tag_field="type", frozen=True):
    text: str


class Base64Source(Struct, tag="base64", tag_field="type", frozen=True):
    media_type: str
    data: str


class URLSource(Struct, tag="url", tag_field="type", frozen=True):
    url: str


class ImageBlock(Struct, tag="image", tag_field="type", frozen=True):
    source: Base64Source | URLSource


class ToolUseBlock(Struct, tag="tool_use", tag_field="type", frozen=True):
    id: str
    name: str
    input: Any = None  # an object on the wire; anything else is re-encoded as given


class ToolResultBlock(Struct, tag="tool_result", tag_field="type", frozen=True, kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False


class ThinkingBlock(Struct, tag="thinking", tag_field="type", frozen=True):
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(Struct, tag="redacted_thinking", tag_field="type", frozen=True):
    data: str = ""


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock


class InputMessage(Struct, frozen=True):
    # `system` turns inside `messages` are allowed by anthropic-sdk-python 2.10.0 (§3.2).
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


# ---------------------------------------------------------------- tools


class Tool(Struct, frozen=True, kw_only=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    # Absent or "custom" for client tools; server tools carry a versioned type (`web_search_...`).
    type: str | None = None
    strict: bool | None = None


class ToolChoiceAuto(Struct, tag="auto", tag_field="type", frozen=True):
    disable_parallel_tool_use: bool = False


class ToolChoiceAny(Struct, tag="any", tag_field="type", frozen=True):
    disable_parallel_tool_use: bool = False


class ToolChoiceTool(Struct, tag="tool", tag_field="type", frozen=True):
    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(Struct, tag="none", tag_field="type", frozen=True):
    pass


ToolChoiceWire = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


# ---------------------------------------------------------------- controls


class ThinkingConfig(Struct, frozen=True):
    # enabled | disabled | adaptive | between_tools (§3.2); checked in decode for a clear error.
    type: str
    budget_tokens: int | None = None


class JSONSchemaFormat(Struct, frozen=True):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(Struct, frozen=True):
    effort: str | None = None
    format: JSONSchemaFormat | None = None


class Metadata(Struct, frozen=True):
    user_id: str | None = None


class MessagesRequest(Struct, frozen=True, kw_only=True):
    """`POST /v1/messages`. `max_tokens` is required; it is optional here only so a missing value
    gets Anthropic's own message and `param`, and so `count_tokens` can share the type."""

    model: str
    messages: list[InputMessage]
    max_tokens: int | None = None
    system: str | list[TextBlock] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoiceWire | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None
    # --- runapi extensions (not in the Anthropic spec; runapi-contract §4.1) ---
    callback_url: str | None = None
    webhook_events_filter: list[str] | None = None
