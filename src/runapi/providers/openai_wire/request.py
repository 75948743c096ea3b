"""Canonical `ChatRequest` → Chat Completions request body (protocols.md §6.2-6.8).

`RequestBuilder` is the generic OpenAI-compatible mapping; an upstream with quirks subclasses it and
overrides the policy hooks (`tool_choice`, `reasoning`, `native_response_format`, `sampling`).

Every upstream gets a repaired history, because strict servers (MiniMax, vLLM chat templates) reject
what clients routinely send (§5.3):
- tool-call arguments that are not a JSON object become `"{}"`;
- every call of an assistant turn is answered right after it, in call order; a missing answer
  becomes an error result, and results that answer no call of that turn are dropped;
- all system text is merged into one leading system message.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from runapi.canonical import (
    ChatRequest,
    ImagePart,
    ReasoningControl,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from runapi.catalog import ModelEntry
from runapi.errors import InvalidRequest
from runapi.providers.openai_wire.wire import (
    ChatCompletionsRequest,
    ContentPart,
    FunctionCall,
    FunctionDef,
    ImageContent,
    ImageURL,
    JsonSchemaFormat,
    NamedFunction,
    NamedToolChoice,
    ReasoningDetail,
    ResponseFormatWire,
    StreamOptions,
    TextContent,
    Thinking,
    ToolCall,
    ToolDef,
    WireMessage,
    request_encoder,
)

ReasoningHistory = Literal["reasoning_details", "reasoning_content", "think_tags", "drop"]
WireToolChoice = str | NamedToolChoice
_Content = TextPart | ImagePart | ReasoningPart | ToolCallPart  # message parts other than tool results

MISSING_TOOL_RESULT = "Error: the client sent no result for this tool call."
TOOL_ERROR_PREFIX = "Error: "
_EMPTY_SCHEMA: dict[str, object] = {"type": "object", "properties": {}}
_STREAM_USAGE = StreamOptions(include_usage=True)

JSON_OBJECT_INSTRUCTION = (
    "Respond with one valid JSON object and nothing else: no prose before or after it and no "
    "Markdown code fences."
)


def json_instruction(fmt: ResponseFormat) -> str | None:
    """The system-prompt stand-in for `response_format`, for upstreams that ignore the field."""
    if fmt.type == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if fmt.type == "json_schema":
        schema = msgspec.json.encode(fmt.schema or {}).decode()
        return f"{JSON_OBJECT_INSTRUCTION} The object must conform to this JSON Schema:\n{schema}"
    return None


def repair_arguments(arguments: str) -> str:
    """Tool-call arguments as a JSON object string; anything else becomes `"{}"` (MiniMax 2013)."""
    try:
        value = msgspec.json.decode(arguments)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return "{}"
    return arguments if isinstance(value, dict) else "{}"


class ReasoningFields(msgspec.Struct, frozen=True):
    thinking: Thinking | None = None
    reasoning_effort: str | None = None
    chat_template_kwargs: dict[str, object] | None = None


class RequestBuilder:
    """Builds the upstream body. One instance per upstream; `build` is pure."""

    def __init__(
        self,
        *,
        reasoning_split: bool | None = None,
        reasoning_history: ReasoningHistory = "reasoning_content",
        max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_tokens",
        default_max_tokens: bool = False,
        send_stop: bool = True,
        send_seed: bool = True,
        send_parallel_tool_calls: bool = True,
    ) -> None:
        self.reasoning_split = reasoning_split
        self.reasoning_history: ReasoningHistory = reasoning_history
        self.max_tokens_field = max_tokens_field
        self.default_max_tokens = default_max_tokens
        self.send_stop = send_stop
        self.send_seed = send_seed
        self.send_parallel_tool_calls = send_parallel_tool_calls

    # ------------------------------------------------------------ policy hooks

    def tool_choice(self, choice: ToolChoice, model: ModelEntry) -> tuple[WireToolChoice, str | None]:
        """The wire `tool_choice`, and the one tool to keep when the choice names a tool."""
        if choice.mode == "tool":
            return NamedToolChoice(NamedFunction(choice.name or "")), None
        return choice.mode, None

    def reasoning(self, control: ReasoningControl, model: ModelEntry) -> ReasoningFields:
        off = control.enabled is False or control.effort == "none"
        kwargs: dict[str, object] | None = None
        if off or control.enabled is True:
            kwargs = {"enable_thinking": not off}
        effort = control.effort if control.effort not in (None, "none") else None
        return ReasoningFields(reasoning_effort=effort, chat_template_kwargs=kwargs)

    def native_response_format(self, model: ModelEntry) -> bool:
        return True

    def sampling(self, value: float | None) -> float | None:
        return value

    # ------------------------------------------------------------ building

    def build(self, request: ChatRequest, model: ModelEntry) -> bytes:
        return request_encoder.encode(self.body(request, model))

    def body(self, request: ChatRequest, model: ModelEntry) -> ChatCompletionsRequest:
        response_format: ResponseFormatWire | None = None
        instruction: str | None = None
        if request.response_format is not None and request.response_format.type != "text":
            if self.native_response_format(model):
                response_format = _response_format_wire(request.response_format)
            else:
                instruction = json_instruction(request.response_format)

        tools: list[ToolDef] | None = None
        tool_choice: WireToolChoice | None = None
        if request.tools:
            only: str | None = None
            if request.tool_choice is not None:
                if request.tool_choice.mode == "tool" and not any(
                    t.name == request.tool_choice.name for t in request.tools
                ):
                    raise InvalidRequest(
                        f"tool_choice names '{request.tool_choice.name}', which is not among the tools.",
                        param="tool_choice",
                    )
                tool_choice, only = self.tool_choice(request.tool_choice, model)
            tools = [
                ToolDef(FunctionDef(t.name, t.parameters or dict(_EMPTY_SCHEMA), t.description))
                for t in request.tools
                if only is None or t.name == only
            ]

        reasoning = (
            self.reasoning(request.reasoning, model) if request.reasoning is not None else ReasoningFields()
        )
        cap = self._max_tokens(request, model)
        return ChatCompletionsRequest(
            model=model.wire_model,
            messages=self.messages(request, model, instruction),
            # A client that wants one JSON document gets one from upstream too: a single decode
            # instead of one per token, on both sides of the wire.
            stream=request.stream,
            stream_options=_STREAM_USAGE if request.stream else None,
            max_completion_tokens=cap if self.max_tokens_field == "max_completion_tokens" else None,
            max_tokens=cap if self.max_tokens_field == "max_tokens" else None,
            temperature=self.sampling(request.temperature),
            top_p=self.sampling(request.top_p),
            stop=list(request.stop) if self.send_stop and request.stop else None,
            seed=request.seed if self.send_seed else None,
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=(
                request.parallel_tool_calls if self.send_parallel_tool_calls and tools else None
            ),
            response_format=response_format,
            reasoning_effort=reasoning.reasoning_effort,
            reasoning_split=self.reasoning_split,
            thinking=reasoning.thinking,
            chat_template_kwargs=reasoning.chat_template_kwargs,
        )

    def _max_tokens(self, request: ChatRequest, model: ModelEntry) -> int | None:
        wanted = request.max_output_tokens
        if wanted is None:
            # The hold assumed at most this much output; asking for more could outrun it.
            return min(model.output_cap_for_hold, model.max_output) if self.default_max_tokens else None
        return max(1, min(wanted, model.max_output))

    def messages(self, request: ChatRequest, model: ModelEntry, instruction: str | None) -> list[WireMessage]:
        out: list[WireMessage] = []
        system = "\n\n".join(s for s in (*request.system, instruction) if s)
        if system:
            out.append(WireMessage(role="system", content=system))
        # Calls of the latest assistant turn → their result (None until answered), in call order.
        pending: dict[str, str | None] = {}

        def answer_pending() -> None:
            for call_id, result in pending.items():
                content = MISSING_TOOL_RESULT if result is None else result
                out.append(WireMessage(role="tool", tool_call_id=call_id, content=content))
            pending.clear()

        for message in request.messages:
            rest: list[_Content] = []
            for part in message.parts:
                if isinstance(part, ToolResultPart):
                    # A result for no call of the previous turn is rejected upstream: drop it.
                    if part.tool_call_id in pending and pending[part.tool_call_id] is None:
                        text = TOOL_ERROR_PREFIX + part.content if part.is_error else part.content
                        pending[part.tool_call_id] = text
                else:
                    rest.append(part)
            if message.role == "tool" or (message.role == "user" and not rest):
                continue
            answer_pending()
            if message.role == "assistant":
                out.append(self._assistant(rest))
                for part in rest:
                    if isinstance(part, ToolCallPart):
                        pending.setdefault(part.id, None)
            else:
                out.append(_user(rest, model))
        answer_pending()
        return out

    def _assistant(self, parts: list[_Content]) -> WireMessage:
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        reasoning = [p.text for p in parts if isinstance(p, ReasoningPart) and p.text]
        calls = [
            ToolCall(id=p.id, function=FunctionCall(p.name, repair_arguments(p.arguments)))
            for p in parts
            if isinstance(p, ToolCallPart)
        ]
        details: list[ReasoningDetail] | None = None
        reasoning_content: str | None = None
        if reasoning and self.reasoning_history == "reasoning_details":
            details = [
                ReasoningDetail(
                    type="reasoning.text",
                    text=t,
                    id=f"reasoning-text-{i + 1}",
                    format="MiniMax-response-v1",
                    index=i,
                )
                for i, t in enumerate(reasoning)
            ]
        elif reasoning and self.reasoning_history == "reasoning_content":
            reasoning_content = "".join(reasoning)
        elif reasoning and self.reasoning_history == "think_tags":
            # The raw form MiniMax asks for when `reasoning_split` is off (protocols.md §5.4).
            text = f"<think>\n{''.join(reasoning)}\n</think>\n\n{text}"
        return WireMessage(
            role="assistant",
            content=text,
            reasoning_content=reasoning_content,
            reasoning_details=details,
            tool_calls=calls or None,
        )


def _user(parts: list[_Content], model: ModelEntry) -> WireMessage:
    images = [p for p in parts if isinstance(p, ImagePart)]
    if not images:
        return WireMessage(role="user", content="\n".join(p.text for p in parts if isinstance(p, TextPart)))
    if not model.has("vision"):
        raise InvalidRequest(f"The model '{model.id}' does not accept image input.", param="messages")
    content: list[ContentPart] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append(TextContent(part.text))
        elif isinstance(part, ImagePart):
            content.append(ImageContent(ImageURL(part.url, part.detail)))
    return WireMessage(role="user", content=content)


def _response_format_wire(fmt: ResponseFormat) -> ResponseFormatWire:
    if fmt.type == "json_schema":
        schema = JsonSchemaFormat(name=fmt.name or "response", schema=fmt.schema or {}, strict=fmt.strict)
        return ResponseFormatWire(type="json_schema", json_schema=schema)
    return ResponseFormatWire(type=fmt.type)


__all__ = [
    "JSON_OBJECT_INSTRUCTION",
    "MISSING_TOOL_RESULT",
    "ReasoningFields",
    "ReasoningHistory",
    "RequestBuilder",
    "json_instruction",
    "repair_arguments",
]
