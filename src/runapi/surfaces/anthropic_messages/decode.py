"""Anthropic Messages request → canonical `ChatRequest` (pure; protocols.md §3.2-§3.4, §6)."""

from __future__ import annotations

import msgspec

from runapi.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ReasoningControl,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from runapi.canonical.codec import Decoded, GatewayOptions
from runapi.errors import InvalidRequest
from runapi.surfaces.anthropic_messages import request as wire
from runapi.surfaces.reasoning_signature import ReasoningSigner
from runapi.surfaces.validation import decode_or_invalid

_decoder = msgspec.json.Decoder(wire.MessagesRequest)
_json = msgspec.json.Encoder()

_THINKING_ON = frozenset({"enabled", "adaptive", "between_tools"})
# Text a tool result keeps when it held an image: MiniMax M2.x takes no images in tool results (§6.4).
IMAGE_IN_TOOL_RESULT = "[image omitted: images inside tool results are not supported]"


def _invalid(param: str, text: str) -> InvalidRequest:
    # Anthropic's envelope has no `param` field, so the path also leads the message, as Anthropic does.
    return InvalidRequest(f"{param}: {text}", param=param)


def _image(block: wire.ImageBlock) -> ImagePart:
    source = block.source
    if isinstance(source, wire.Base64Source):
        return ImagePart(url=f"data:{source.media_type};base64,{source.data}")
    return ImagePart(url=source.url)


def _tool_result_text(block: wire.ToolResultBlock) -> str:
    if isinstance(block.content, str):
        return block.content
    texts = [b.text if isinstance(b, wire.TextBlock) else IMAGE_IN_TOOL_RESULT for b in block.content]
    return "\n".join(texts)


def tool_arguments(value: object) -> str:
    """`tool_use.input` (an object) → the canonical JSON string, compact (§6.4)."""
    if value is None:
        return "{}"
    return _json.encode(value).decode()


class _History:
    """Builds canonical messages; system turns go to `system`, tool results to `tool` messages."""

    def __init__(self, signer: ReasoningSigner) -> None:
        self.signer = signer
        self.system: list[str] = []
        self.messages: list[Message] = []
        self._last_calls: list[str] = []  # tool-call ids of the latest assistant turn, in order

    def add(self, msg: wire.InputMessage, param: str) -> None:
        if msg.role == "system":
            self.system.append(self._system_text(msg.content, f"{param}.content"))
        elif msg.role == "assistant":
            self._assistant(msg.content, f"{param}.content")
        else:
            self._user(msg.content, f"{param}.content")

    @staticmethod
    def _system_text(content: str | list[wire.ContentBlock], param: str) -> str:
        if isinstance(content, str):
            return content
        texts = []
        for i, block in enumerate(content):
            if not isinstance(block, wire.TextBlock):
                raise _invalid(f"{param}[{i}].type", "system content must be text blocks.")
            texts.append(block.text)
        return "\n\n".join(texts)

    def _assistant(self, content: str | list[wire.ContentBlock], param: str) -> None:
        parts: list[Part] = []
        if isinstance(content, str):
            if content:
                parts.append(TextPart(content))
        else:
            for i, block in enumerate(content):
                if isinstance(block, wire.TextBlock):
                    parts.append(TextPart(block.text))
                elif isinstance(block, wire.ThinkingBlock):
                    # Thinking goes back upstream (MiniMax's interleaved thinking); the signature
                    # survives only if the gateway made it (§6.7).
                    signature = self.signer.checked(block.thinking, block.signature)
                    parts.append(ReasoningPart(block.thinking, signature))
                elif isinstance(block, wire.ToolUseBlock):
                    parts.append(
                        ToolCallPart(id=block.id, name=block.name, arguments=tool_arguments(block.input))
                    )
                elif isinstance(block, wire.RedactedThinkingBlock):
                    continue  # opaque to us and to MiniMax: dropped (§6.7)
                else:
                    kind = type(block).__struct_config__.tag
                    raise _invalid(f"{param}[{i}].type", f"an assistant turn cannot hold '{kind}' blocks.")
        self._last_calls = [p.id for p in parts if isinstance(p, ToolCallPart)]
        if parts:
            self.messages.append(Message(role="assistant", parts=tuple(parts)))

    def _user(self, content: str | list[wire.ContentBlock], param: str) -> None:
        if isinstance(content, str):
            self.messages.append(Message(role="user", parts=(TextPart(content),)))
            return
        results: list[ToolResultPart] = []
        parts: list[Part] = []
        for i, block in enumerate(content):
            if isinstance(block, wire.ToolResultBlock):
                results.append(
                    ToolResultPart(
                        tool_call_id=block.tool_use_id,
                        content=_tool_result_text(block),
                        is_error=block.is_error,
                    )
                )
            elif isinstance(block, wire.TextBlock):
                parts.append(TextPart(block.text))
            elif isinstance(block, wire.ImageBlock):
                parts.append(_image(block))
            else:
                kind = type(block).__struct_config__.tag
                raise _invalid(f"{param}[{i}].type", f"a user turn cannot hold '{kind}' blocks.")
        if results:
            # Tool results answer the previous assistant turn, in its call order, before any text (§6.4).
            order = {call_id: n for n, call_id in enumerate(self._last_calls)}
            results.sort(key=lambda r: order.get(r.tool_call_id, len(order)))
            self.messages.append(Message(role="tool", parts=tuple(results)))
        if parts:
            self.messages.append(Message(role="user", parts=tuple(parts)))
        self._last_calls = []


def _system(value: str | list[wire.TextBlock] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    text = "\n\n".join(b.text for b in value)
    return [text] if text else []


def _tools(tools: list[wire.Tool] | None) -> tuple[ToolSpec, ...]:
    specs = []
    for i, tool in enumerate(tools or ()):
        if tool.type not in (None, "custom") or tool.input_schema is None:
            kind = tool.type or "unknown"
            raise _invalid(
                f"tools[{i}]",
                f"server tools ('{kind}') are not supported by this gateway; "
                "define client tools with 'name' and 'input_schema'.",
            )
        specs.append(ToolSpec(name=tool.name, description=tool.description, parameters=tool.input_schema))
    return tuple(specs)


def _tool_choice(
    choice: wire.ToolChoiceWire | None, tools: tuple[ToolSpec, ...]
) -> tuple[ToolChoice | None, bool | None]:
    """The canonical choice and `parallel_tool_calls` (False when parallel use is disabled)."""
    if choice is None:
        return None, None
    if isinstance(choice, wire.ToolChoiceNone):
        return ToolChoice(mode="none"), None
    parallel = False if choice.disable_parallel_tool_use else None
    if isinstance(choice, wire.ToolChoiceAuto):
        return ToolChoice(mode="auto"), parallel
    if isinstance(choice, wire.ToolChoiceAny):
        if not tools:
            raise _invalid("tool_choice", "'any' needs at least one tool.")
        return ToolChoice(mode="required"), parallel
    if choice.name not in {t.name for t in tools}:
        raise _invalid("tool_choice.name", f"'{choice.name}' is not one of the tools.")
    return ToolChoice(mode="tool", name=choice.name), parallel


def _reasoning(req: wire.MessagesRequest) -> ReasoningControl | None:
    effort = req.output_config.effort if req.output_config is not None else None
    thinking = req.thinking
    if thinking is None:
        return ReasoningControl(effort=effort) if effort else None
    if thinking.type == "disabled":
        return ReasoningControl(enabled=False, effort=effort)
    if thinking.type not in _THINKING_ON:
        raise _invalid("thinking.type", f"'{thinking.type}' is not one of enabled, disabled, adaptive.")
    if thinking.type == "enabled" and thinking.budget_tokens is None:
        raise _invalid("thinking.budget_tokens", "Field required")
    return ReasoningControl(enabled=True, effort=effort, budget_tokens=thinking.budget_tokens)


def _response_format(req: wire.MessagesRequest) -> ResponseFormat | None:
    if req.output_config is None or req.output_config.format is None:
        return None
    return ResponseFormat(type="json_schema", schema=req.output_config.format.schema)


def _check_ranges(req: wire.MessagesRequest) -> None:
    if req.temperature is not None and not 0.0 <= req.temperature <= 1.0:
        raise _invalid("temperature", "must be between 0 and 1.")
    if req.top_p is not None and not 0.0 <= req.top_p <= 1.0:
        raise _invalid("top_p", "must be between 0 and 1.")


def to_canonical(req: wire.MessagesRequest, signer: ReasoningSigner) -> ChatRequest:
    """The shared part of `/v1/messages` and `/v1/messages/count_tokens`."""
    if not req.messages:
        raise _invalid("messages", "at least one message is required.")
    _check_ranges(req)
    history = _History(signer)
    history.system.extend(_system(req.system))
    for i, msg in enumerate(req.messages):
        history.add(msg, f"messages[{i}]")
    tools = _tools(req.tools)
    tool_choice, parallel = _tool_choice(req.tool_choice, tools)
    return ChatRequest(
        model=req.model,
        messages=tuple(history.messages),
        system=tuple(history.system),
        max_output_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=tuple(s for s in req.stop_sequences or () if s),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        response_format=_response_format(req),
        reasoning=_reasoning(req),
        stream=req.stream,
        user=req.metadata.user_id if req.metadata is not None else None,
    )


def decode(body: bytes, signer: ReasoningSigner) -> Decoded:
    req = decode_or_invalid(_decoder, body)
    if req.max_tokens is None:
        raise _invalid("max_tokens", "Field required")
    if req.max_tokens < 1:
        raise _invalid("max_tokens", "must be at least 1.")
    request = to_canonical(req, signer)
    gateway = GatewayOptions(
        callback_url=req.callback_url,
        webhook_events_filter=tuple(req.webhook_events_filter) if req.webhook_events_filter else None,
    )
    return Decoded(request=request, gateway=gateway, requested_model=req.model)


def decode_count_tokens(body: bytes, signer: ReasoningSigner) -> ChatRequest:
    """`POST /v1/messages/count_tokens`: the Messages body without generation controls (§3.8)."""
    return to_canonical(decode_or_invalid(_decoder, body), signer)
