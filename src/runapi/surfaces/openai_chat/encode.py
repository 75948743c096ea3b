"""Canonical completion/events → Chat Completions bodies and SSE chunks (pure)."""

from __future__ import annotations

import msgspec

from runapi.canonical import (
    Completion,
    Event,
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)
from runapi.canonical.codec import Decoded, ResponseMeta
from runapi.errors import RunapiError
from runapi.surfaces.openai_chat import wire
from runapi.surfaces.openai_errors import stream_error_frame

_encoder = msgspec.json.Encoder()

# A gateway-enforced stop sequence is still `stop` on this surface (protocols.md §6.5).
FINISH = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def usage_out(usage: Usage | None, cost_usd: float | None) -> wire.UsageOut:
    u = usage or Usage(input_tokens=0, output_tokens=0)
    return wire.UsageOut(
        prompt_tokens=u.input_tokens,
        completion_tokens=u.output_tokens,
        total_tokens=u.total_tokens,
        prompt_tokens_details=wire.PromptTokensDetails(
            cached_tokens=u.cached_input_tokens, cache_write_tokens=u.cache_write_tokens
        ),
        completion_tokens_details=wire.CompletionTokensDetails(reasoning_tokens=u.reasoning_tokens),
        cost=cost_usd,
    )


def finish_reason(completion: Completion) -> str:
    reason = FINISH.get(completion.finish_reason or "stop", "stop")
    # MiniMax may say `stop` while calling tools; clients key off `tool_calls` (§6.5).
    if completion.tool_calls and reason == "stop":
        return "tool_calls"
    return reason


def render(completion: Completion, meta: ResponseMeta) -> bytes:
    calls = completion.tool_calls
    message = wire.MessageOut(
        content=completion.text if (completion.text or not calls) else None,
        tool_calls=[
            wire.ToolCallOut(id=c.id, function=wire.FunctionCall(name=c.name, arguments=c.arguments))
            for c in calls
        ]
        or None,
        reasoning_content=completion.reasoning or None,
    )
    body = wire.ChatCompletion(
        id=meta.surface_id,
        created=meta.created,
        model=meta.model,
        choices=[wire.ChoiceOut(index=0, message=message, finish_reason=finish_reason(completion))],
        usage=usage_out(completion.usage, meta.cost_usd),
    )
    return _encoder.encode(body)


class ChatStreamEncoder:
    """SSE frames for one streamed completion (protocols.md §1.6, §6.9)."""

    content_type = "text/event-stream"

    __slots__ = ("_include_usage", "_meta", "_saw_tool")

    def __init__(self, meta: ResponseMeta, decoded: Decoded) -> None:
        self._meta = meta
        self._include_usage = decoded.include_usage
        self._saw_tool = False

    def _frame(self, delta: wire.Delta, finish: str | None = None) -> bytes:
        m = self._meta
        choice = wire.ChunkChoice(index=0, delta=delta, finish_reason=finish)
        if self._include_usage:
            chunk: wire.ChatCompletionChunk | wire.ChatCompletionChunkWithUsage = (
                wire.ChatCompletionChunkWithUsage(
                    id=m.surface_id, created=m.created, model=m.model, choices=[choice]
                )
            )
        else:
            chunk = wire.ChatCompletionChunk(
                id=m.surface_id, created=m.created, model=m.model, choices=[choice]
            )
        return b"data: " + _encoder.encode(chunk) + b"\n\n"

    def start(self) -> bytes:
        return self._frame(wire.Delta(role="assistant", content=""))

    def event(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._frame(wire.Delta(content=event.text)) if event.text else b""
        if isinstance(event, ReasoningDelta):
            return self._frame(wire.Delta(reasoning_content=event.text)) if event.text else b""
        if isinstance(event, ToolCallStart):
            self._saw_tool = True
            call = wire.ToolCallDeltaOut(
                index=event.index,
                id=event.id,
                type="function",
                function=wire.FunctionDelta(name=event.name, arguments=""),
            )
            return self._frame(wire.Delta(tool_calls=[call]))
        if isinstance(event, ToolCallDelta):
            call = wire.ToolCallDeltaOut(
                index=event.index, function=wire.FunctionDelta(arguments=event.arguments)
            )
            return self._frame(wire.Delta(tool_calls=[call]))
        return b""  # Finished and usage are rendered by `finish`, once everything is known.

    def finish(self, completion: Completion) -> bytes:
        out = [self._frame(wire.Delta(), finish_reason(completion))]
        if self._include_usage:
            m = self._meta
            usage_chunk = wire.ChatCompletionChunkWithUsage(
                id=m.surface_id,
                created=m.created,
                model=m.model,
                choices=[],
                usage=usage_out(completion.usage, m.cost_usd),
            )
            out.append(b"data: " + _encoder.encode(usage_chunk) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return b"".join(out)

    def error(self, error: RunapiError) -> bytes:
        return stream_error_frame(error)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"


def is_finished(event: Event) -> bool:
    return isinstance(event, Finished)
