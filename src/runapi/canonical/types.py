"""Canonical types. msgspec Structs: typed, cheap to build, and encodable without adapters."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "stop_sequence"]


# ---------------------------------------------------------------- request parts


class TextPart(msgspec.Struct, tag="text", frozen=True):
    text: str


class ImagePart(msgspec.Struct, tag="image", frozen=True):
    """An image as a URL; base64 payloads arrive as `data:<mime>;base64,...` URLs."""

    url: str
    detail: str | None = None


class ReasoningPart(msgspec.Struct, tag="reasoning", frozen=True):
    """Model reasoning. It is output, and goes back upstream on later turns (interleaved thinking).

    `signature` is the opaque token a client echoes (Anthropic `thinking.signature`, Responses
    `encrypted_content`); surfaces create and check it, providers ignore it.
    """

    text: str
    signature: str | None = None


class ToolCallPart(msgspec.Struct, tag="tool_call", frozen=True):
    id: str
    name: str
    arguments: str  # always a JSON-encoded string, as on the OpenAI wire


class ToolResultPart(msgspec.Struct, tag="tool_result", frozen=True):
    tool_call_id: str
    content: str
    is_error: bool = False


Part = TextPart | ImagePart | ReasoningPart | ToolCallPart | ToolResultPart


class Message(msgspec.Struct, frozen=True):
    """One turn. System text is not a message: it lives in `ChatRequest.system`.

    A `tool` message holds exactly the `ToolResultPart`s answering the previous assistant turn.
    """

    role: Role
    parts: tuple[Part, ...]


class ToolSpec(msgspec.Struct, frozen=True):
    name: str
    description: str | None = None
    # A JSON Schema object: opaque data passed through, the one place a dict is the right type.
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)


class ToolChoice(msgspec.Struct, frozen=True):
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None  # with mode == "tool"


class ResponseFormat(msgspec.Struct, frozen=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ReasoningControl(msgspec.Struct, frozen=True):
    """The client's reasoning intent, from `reasoning_effort`, `reasoning.effort` or `thinking`."""

    enabled: bool | None = None  # None: the model's default
    effort: str | None = None
    budget_tokens: int | None = None


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    messages: tuple[Message, ...]
    system: tuple[str, ...] = ()
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning: ReasoningControl | None = None
    stream: bool = False
    user: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)

    def with_changes(self, **changes: Any) -> ChatRequest:
        return msgspec.structs.replace(self, **changes)


# ---------------------------------------------------------------- usage


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts in OpenAI semantics: `input_tokens` includes cached and cache-write tokens,
    `output_tokens` includes reasoning tokens."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    source: Literal["upstream", "estimated"] = "upstream"

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cached_input_tokens - self.cache_write_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# ---------------------------------------------------------------- stream events


class UpstreamInfo(msgspec.Struct, tag="upstream", frozen=True):
    """Sent once, first, when the provider knows the upstream's own id (trace-id)."""

    upstream_id: str | None = None


class ReasoningDelta(msgspec.Struct, tag="reasoning_delta", frozen=True):
    text: str


class TextDelta(msgspec.Struct, tag="text_delta", frozen=True):
    text: str


class ToolCallStart(msgspec.Struct, tag="tool_call_start", frozen=True):
    """A new tool call; `index` is its position among this turn's calls (0, 1, ...)."""

    index: int
    id: str
    name: str


class ToolCallDelta(msgspec.Struct, tag="tool_call_delta", frozen=True):
    index: int
    arguments: str


class Finished(msgspec.Struct, tag="finished", frozen=True):
    reason: FinishReason
    stop_sequence: str | None = None


class UsageReport(msgspec.Struct, tag="usage", frozen=True):
    usage: Usage


Event = UpstreamInfo | ReasoningDelta | TextDelta | ToolCallStart | ToolCallDelta | Finished | UsageReport


# ---------------------------------------------------------------- result


class Completion(msgspec.Struct, kw_only=True):
    """A whole assistant turn, folded from events: reasoning, text and tool calls in order."""

    parts: list[Part] = msgspec.field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    upstream_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def reasoning(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, ReasoningPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]
