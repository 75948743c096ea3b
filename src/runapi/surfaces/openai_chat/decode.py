"""Chat Completions request → canonical `ChatRequest` (pure)."""

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
from runapi.surfaces.openai_chat import wire
from runapi.surfaces.validation import decode_or_invalid

_decoder = msgspec.json.Decoder(wire.ChatCompletionRequest)


def _text_of(content: str | list[wire.ContentPart] | None, param: str) -> str:
    """System, developer and tool content: a string or text parts only."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if isinstance(part, wire.TextContent):
            texts.append(part.text)
        elif isinstance(part, wire.RefusalContent):
            texts.append(part.refusal)
        else:
            raise InvalidRequest("Only text content parts are allowed here.", param=f"{param}[{i}].type")
    return "".join(texts)


def _user_parts(content: str | list[wire.ContentPart] | None, param: str) -> tuple[Part, ...]:
    if content is None:
        raise InvalidRequest("A user message needs content.", param=param)
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[Part] = []
    for i, part in enumerate(content):
        if isinstance(part, wire.TextContent):
            parts.append(TextPart(part.text))
        elif isinstance(part, wire.ImageContent):
            parts.append(ImagePart(url=part.image_url.url, detail=part.image_url.detail))
        else:
            kind = type(part).__struct_config__.tag
            raise InvalidRequest(
                f"Content parts of type '{kind}' are not supported by this gateway's models.",
                param=f"{param}[{i}].type",
            )
    return tuple(parts)


def _assistant_parts(msg: wire.ChatMessage, param: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    # Reasoning goes back upstream first (MiniMax's interleaved thinking, protocols.md §5.4).
    reasoning = msg.reasoning_content
    if reasoning is None and msg.reasoning_details:
        reasoning = "".join(d.text for d in msg.reasoning_details)
    if reasoning:
        parts.append(ReasoningPart(reasoning))
    text = _text_of(msg.content, f"{param}.content")
    if text:
        parts.append(TextPart(text))
    for call in msg.tool_calls or ():
        parts.append(ToolCallPart(id=call.id, name=call.function.name, arguments=call.function.arguments))
    if msg.function_call is not None:  # deprecated single-call form
        fc = msg.function_call
        parts.append(ToolCallPart(id=f"call_{fc.name}", name=fc.name, arguments=fc.arguments))
    return tuple(parts)


def _messages(req: wire.ChatCompletionRequest) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    system: list[str] = []
    messages: list[Message] = []
    pending_results: list[ToolResultPart] = []

    def flush_results() -> None:
        if pending_results:
            messages.append(Message(role="tool", parts=tuple(pending_results)))
            pending_results.clear()

    for i, msg in enumerate(req.messages):
        param = f"messages[{i}]"
        if msg.role in ("system", "developer"):
            system.append(_text_of(msg.content, f"{param}.content"))
            continue
        if msg.role in ("tool", "function"):
            call_id = msg.tool_call_id or (f"call_{msg.name}" if msg.role == "function" else None)
            if not call_id:
                raise InvalidRequest("A tool message needs 'tool_call_id'.", param=f"{param}.tool_call_id")
            pending_results.append(
                ToolResultPart(tool_call_id=call_id, content=_text_of(msg.content, f"{param}.content"))
            )
            continue
        flush_results()
        if msg.role == "user":
            messages.append(Message(role="user", parts=_user_parts(msg.content, f"{param}.content")))
        else:
            messages.append(Message(role="assistant", parts=_assistant_parts(msg, param)))
    flush_results()
    if not messages:
        raise InvalidRequest("At least one user message is required.", param="messages")
    return tuple(system), tuple(messages)


def _tool_choice(req: wire.ChatCompletionRequest) -> ToolChoice | None:
    choice = req.tool_choice
    if choice is None:
        return None
    if isinstance(choice, wire.NamedToolChoice):
        names = {t.function.name for t in req.tools or ()}
        if choice.function.name not in names:
            raise InvalidRequest(
                f"tool_choice names '{choice.function.name}', which is not in 'tools'.",
                param="tool_choice",
            )
        return ToolChoice(mode="tool", name=choice.function.name)
    if choice in ("required",) and not req.tools:
        raise InvalidRequest("tool_choice 'required' needs at least one tool.", param="tool_choice")
    return ToolChoice(mode=choice)


def _response_format(req: wire.ChatCompletionRequest) -> ResponseFormat | None:
    rf = req.response_format
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_schema":
        if rf.json_schema is None or rf.json_schema.schema is None:
            raise InvalidRequest(
                "response_format json_schema needs 'json_schema.schema'.", param="response_format.json_schema"
            )
        return ResponseFormat(
            type="json_schema",
            name=rf.json_schema.name,
            schema=rf.json_schema.schema,
            strict=rf.json_schema.strict,
        )
    return ResponseFormat(type="json_object")


def _reasoning(req: wire.ChatCompletionRequest) -> ReasoningControl | None:
    effort = req.reasoning_effort
    if effort is None:
        return None
    return ReasoningControl(enabled=effort != "none", effort=effort)


def decode(body: bytes) -> Decoded:
    req = decode_or_invalid(_decoder, body)
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true.", param="stream_options")
    system, messages = _messages(req)
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    tools = tuple(
        ToolSpec(
            name=t.function.name, description=t.function.description, parameters=t.function.parameters or {}
        )
        for t in req.tools or ()
    )
    request = ChatRequest(
        model=req.model,
        messages=messages,
        system=system,
        max_output_tokens=req.max_completion_tokens or req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=tuple(s for s in stop if s),
        seed=req.seed,
        tools=tools,
        tool_choice=_tool_choice(req),
        parallel_tool_calls=req.parallel_tool_calls,
        response_format=_response_format(req),
        reasoning=_reasoning(req),
        stream=req.stream,
        user=req.user,
        metadata=req.metadata or {},
    )
    gateway = GatewayOptions(
        callback_url=req.callback_url,
        webhook_events_filter=tuple(req.webhook_events_filter) if req.webhook_events_filter else None,
    )
    include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
    return Decoded(request=request, gateway=gateway, include_usage=include_usage, requested_model=req.model)
