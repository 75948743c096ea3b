"""Chat Completions wire types as an upstream sees them (protocols.md §1, §5.3-5.5).

Requests are encoded with `omit_defaults`, so a field left at None never reaches the upstream.
Responses are decoded leniently: unknown fields (MiniMax's `input_sensitive`, `audio_content`,
vLLM's `prompt_logprobs`, ...) are ignored, and every field has a default because servers differ in
what they leave out.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# ---------------------------------------------------------------- request


class TextContent(msgspec.Struct, tag_field="type", tag="text", frozen=True):
    text: str


class ImageURL(msgspec.Struct, frozen=True, omit_defaults=True):
    url: str
    detail: str | None = None


class ImageContent(msgspec.Struct, tag_field="type", tag="image_url", frozen=True):
    image_url: ImageURL


ContentPart = TextContent | ImageContent


class FunctionCall(msgspec.Struct, frozen=True):
    name: str
    arguments: str


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    function: FunctionCall
    type: str = "function"


class ReasoningDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    """MiniMax's `reasoning_details[]` entry (the shape it sends, so it takes it back unchanged)."""

    type: str  # "reasoning.text" (no default: `omit_defaults` would drop it)
    text: str
    id: str | None = None
    format: str | None = None
    index: int | None = None


class WireMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    role: str
    content: str | list[ContentPart] | None = None
    reasoning_content: str | None = None
    reasoning_details: list[ReasoningDetail] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    parameters: dict[str, Any]
    description: str | None = None


class ToolDef(msgspec.Struct, frozen=True):
    """A tool without `strict`: MiniMax rejected `strict: null`, and strictness is not enforced."""

    function: FunctionDef
    type: str = "function"


class NamedFunction(msgspec.Struct, frozen=True):
    name: str


class NamedToolChoice(msgspec.Struct, frozen=True):
    function: NamedFunction
    type: str = "function"


class JsonSchemaFormat(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    schema: dict[str, Any]
    strict: bool | None = None


class ResponseFormatWire(msgspec.Struct, frozen=True, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct, frozen=True):
    include_usage: bool = True


class Thinking(msgspec.Struct, frozen=True):
    """MiniMax-M3's switch; must be an object (a bare boolean gets 2013)."""

    type: Literal["adaptive", "disabled"]


class ChatCompletionsRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    model: str
    messages: list[WireMessage]
    stream: bool  # no default, so `omit_defaults` always sends it
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[ToolDef] | None = None
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatWire | None = None
    reasoning_effort: str | None = None
    # --- upstream extensions
    reasoning_split: bool | None = None  # MiniMax: reasoning out of `content`
    thinking: Thinking | None = None  # MiniMax-M3
    chat_template_kwargs: dict[str, Any] | None = None  # vLLM / llama.cpp (`enable_thinking`)


# ---------------------------------------------------------------- response (stream chunks)


class FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: FunctionDelta | None = None


class ReasoningDetailDelta(msgspec.Struct):
    text: str | None = None


class Delta(msgspec.Struct):
    """A streamed `delta`, or a whole `message` (the same fields, for non-streamed bodies)."""

    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None  # newer vLLM, OpenRouter-style servers
    reasoning_details: list[ReasoningDetailDelta] | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Choice(msgspec.Struct):
    index: int = 0
    delta: Delta | None = None
    message: Delta | None = None
    finish_reason: str | None = None
    # vLLM: the stop string (or token id) that ended generation.
    stop_reason: str | int | None = None


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class UsageWire(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class BaseResp(msgspec.Struct):
    """MiniMax's status envelope: `status_code != 0` on a 200 is an error."""

    status_code: int = 0
    status_msg: str = ""


class ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    http_code: str | None = None  # MiniMax


class Chunk(msgspec.Struct):
    """One SSE `data:` payload, a non-streamed body, or an error body: all decode to this."""

    id: str | None = None
    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: UsageWire | None = None
    base_resp: BaseResp | None = None
    # `{"error": {...}}` (OpenAI, vLLM) or `{"type": "error", "error": {...}}` (MiniMax); vLLM's
    # older flat shape `{"object": "error", "message": ...}` is read through `object`/`message`.
    error: ErrorBody | str | None = None
    object: str | None = None
    message: str | None = None
    code: str | int | None = None


chunk_decoder = msgspec.json.Decoder(Chunk)
request_encoder = msgspec.json.Encoder()
