"""OpenAI Responses request wire types (protocols.md §2.2, §2.3).

Unknown fields (`include`, `truncation`, `service_tier`, `prompt_cache_key`, ...) are accepted and
dropped, as §2.2 allows. `input` items are kept raw and decoded one by one, because the short form
of a message may leave out `type` (§2.3), which a tagged union cannot express.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

# ---------------------------------------------------------------- content parts


class InputText(Struct, tag="input_text", tag_field="type", frozen=True):
    text: str


class InputImage(Struct, tag="input_image", tag_field="type", frozen=True, kw_only=True):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(Struct, tag="input_file", tag_field="type", frozen=True, kw_only=True):
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(Struct, tag="output_text", tag_field="type", frozen=True):
    text: str


class Refusal(Struct, tag="refusal", tag_field="type", frozen=True):
    refusal: str


ContentPart = InputText | InputImage | InputFile | OutputText | Refusal


# ---------------------------------------------------------------- input items


class MessageItem(Struct, tag="message", tag_field="type", frozen=True, kw_only=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None


class FunctionCallItem(Struct, tag="function_call", tag_field="type", frozen=True, kw_only=True):
    call_id: str
    name: str
    arguments: str = ""
    id: str | None = None


class FunctionCallOutputItem(Struct, tag="function_call_output", tag_field="type", frozen=True, kw_only=True):
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None


class SummaryText(Struct, frozen=True):
    text: str


class ReasoningText(Struct, frozen=True):
    text: str


class ReasoningItem(Struct, tag="reasoning", tag_field="type", frozen=True, kw_only=True):
    id: str | None = None
    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None


class ItemReference(Struct, tag="item_reference", tag_field="type", frozen=True):
    id: str


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem | ItemReference


# ---------------------------------------------------------------- tools and controls


class Tool(Struct, frozen=True, kw_only=True):
    """Function tools are flat (§2.2). Hosted tools have other `type`s and are refused in decode."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceObject(Struct, frozen=True):
    type: str
    name: str | None = None


class TextFormat(Struct, frozen=True, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class TextConfig(Struct, frozen=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(Struct, frozen=True):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(Struct, frozen=True, kw_only=True):
    """`POST /v1/responses` (and `/v1/responses/input_tokens`, where `model` may be left out)."""

    model: str = ""
    input: str | list[msgspec.Raw] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    stream: bool = False
    background: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Tool] | None = None
    tool_choice: str | ToolChoiceObject | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    # --- runapi extensions (not in the OpenAI spec; runapi-contract §4.1) ---
    callback_url: str | None = None
    webhook_events_filter: list[str] | None = None
