"""OpenAI Chat Completions wire types (protocols.md §1). Unknown fields are accepted and dropped."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# ---------------------------------------------------------------- request


class ImageURL(Struct, frozen=True):
    url: str
    detail: str | None = None


class TextContent(Struct, tag="text", frozen=True):
    text: str


class ImageContent(Struct, tag="image_url", frozen=True):
    image_url: ImageURL


class AudioContent(Struct, tag="input_audio", frozen=True):
    input_audio: dict[str, Any]


class FileContent(Struct, tag="file", frozen=True):
    file: dict[str, Any]


class RefusalContent(Struct, tag="refusal", frozen=True):
    refusal: str


ContentPart = TextContent | ImageContent | AudioContent | FileContent | RefusalContent


class FunctionCall(Struct, frozen=True):
    name: str
    arguments: str = ""


class ToolCall(Struct, frozen=True):
    id: str
    function: FunctionCall
    type: str = "function"


class ReasoningDetail(Struct, frozen=True):
    """MiniMax-style `reasoning_details` echoed back by clients that keep them."""

    text: str = ""
    type: str = "reasoning.text"


class ChatMessage(Struct, frozen=True, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    reasoning_content: str | None = None
    reasoning_details: list[ReasoningDetail] | None = None


class FunctionDef(Struct, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(Struct, frozen=True):
    function: FunctionDef
    type: Literal["function"] = "function"


class NamedFunction(Struct, frozen=True):
    name: str


class NamedToolChoice(Struct, frozen=True):
    function: NamedFunction
    type: Literal["function"] = "function"


class JSONSchemaFormat(Struct, frozen=True, kw_only=True):
    name: str = "response"
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(Struct, frozen=True, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(Struct, frozen=True, kw_only=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


Temperature = Annotated[float, Meta(ge=0, le=2)]
TopP = Annotated[float, Meta(ge=0, le=1)]
PositiveInt = Annotated[int, Meta(ge=1)]


class ChatCompletionRequest(Struct, frozen=True, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    n: Annotated[int, Meta(ge=1, le=1)] | None = None
    seed: int | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    # Gateway extras (runapi-contract §3.4, §4.1).
    callback_url: str | None = None
    webhook_events_filter: list[Literal["start", "completed"]] | None = None


# ---------------------------------------------------------------- response


class PromptTokensDetails(Struct, frozen=True):
    cached_tokens: int = 0
    audio_tokens: int = 0
    cache_write_tokens: int = 0


class CompletionTokensDetails(Struct, frozen=True):
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class UsageOut(Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    cost: float | None = None  # USD, OpenRouter-style (runapi-contract §8.7)


class ToolCallOut(Struct, frozen=True):
    id: str
    function: FunctionCall
    type: str = "function"


class MessageOut(Struct, frozen=True, kw_only=True):
    role: str = "assistant"
    content: str | None
    refusal: None = None
    annotations: list[Any] = msgspec.field(default_factory=list)
    tool_calls: list[ToolCallOut] | None = None
    reasoning_content: str | None = None


class ChoiceOut(Struct, frozen=True, kw_only=True):
    index: int
    message: MessageOut
    finish_reason: str
    logprobs: None = None


class ChatCompletion(Struct, frozen=True, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut
    system_fingerprint: str | None = None
    service_tier: str = "default"


# ---------------------------------------------------------------- stream chunks


class FunctionDelta(Struct, frozen=True, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDeltaOut(Struct, frozen=True, omit_defaults=True):
    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class Delta(Struct, frozen=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDeltaOut] | None = None


class ChunkChoice(Struct, frozen=True):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(Struct, frozen=True, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    system_fingerprint: None = None


class ChatCompletionChunkWithUsage(Struct, frozen=True, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = None
    system_fingerprint: None = None


# ---------------------------------------------------------------- errors


class ErrorBody(Struct, frozen=True, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    metadata: dict[str, str] | None = None


class ErrorEnvelope(Struct, frozen=True):
    error: ErrorBody
