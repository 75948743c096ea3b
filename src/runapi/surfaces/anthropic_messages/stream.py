"""Canonical events → Anthropic SSE (protocols.md §3.6, §6.9).

Block state machine: a change of kind (thinking / text / tool_use) closes the open block and
opens the next at index + 1. A thinking block gets the gateway's `signature_delta` right before
its `content_block_stop`.

Tool input is buffered per call and sent as one `input_json_delta` when the block closes: the SDK
re-parses the concatenated fragments after every delta and raises mid-stream on a prefix that
cannot be JSON, and MiniMax sometimes emits invalid arguments. Buffering lets the stream send the
same `{"_raw": ...}` object the non-streaming body does. MiniMax's argument chunks are coarse, so
little smoothness is lost.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from runapi.canonical import (
    Completion,
    Event,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
)
from runapi.canonical.codec import ResponseMeta
from runapi.errors import RunapiError
from runapi.surfaces.anthropic_messages import response as wire
from runapi.surfaces.anthropic_messages.errors import envelope
from runapi.surfaces.anthropic_messages.render import (
    stop_reason,
    stop_sequence,
    tool_input_json,
    usage_out,
)
from runapi.surfaces.reasoning_signature import ReasoningSigner

_encoder = msgspec.json.Encoder()
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'

_Kind = Literal["thinking", "text", "tool"]


def frame(payload: msgspec.Struct) -> bytes:
    """One SSE event; the `event:` name is the struct's tag, so it always equals `data.type`."""
    name = type(payload).__struct_config__.tag
    assert isinstance(name, str)
    return b"event: " + name.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"


class AnthropicStreamEncoder:
    content_type = "text/event-stream"

    __slots__ = ("_args", "_call_index", "_index", "_meta", "_open", "_signer", "_thinking")

    def __init__(self, meta: ResponseMeta, signer: ReasoningSigner) -> None:
        self._meta = meta
        self._signer = signer
        self._open: _Kind | None = None
        self._index = -1
        self._thinking: list[str] = []
        self._call_index: int | None = None  # canonical index of the open tool call
        self._args: dict[int, list[str]] = {}

    def start(self) -> bytes:
        message = wire.MessageOut(
            id=self._meta.surface_id,
            role="assistant",
            model=self._meta.model,
            content=[],
            stop_reason=None,
            stop_sequence=None,
            # Upstream usage only comes at the end; the final message_delta overwrites this (§6.6).
            usage=wire.UsageOut(self._meta.input_token_estimate, 0, 0, 0),
        )
        return frame(wire.MessageStart(message)) + _PING

    def _close(self) -> bytes:
        out = b""
        if self._open == "thinking":
            signature = self._signer.sign("".join(self._thinking))
            out += frame(wire.ContentBlockDelta(self._index, wire.SignatureDeltaOut(signature)))
            self._thinking = []
        elif self._open == "tool" and self._call_index is not None:
            arguments = "".join(self._args.pop(self._call_index, ()))
            if arguments.strip():
                partial = tool_input_json(arguments)
                out += frame(wire.ContentBlockDelta(self._index, wire.InputJSONDeltaOut(partial)))
            self._call_index = None
        if self._open is not None:
            out += frame(wire.ContentBlockStop(self._index))
            self._open = None
        return out

    def _open_block(self, kind: _Kind, block: wire.ContentOut) -> bytes:
        out = self._close()
        self._index += 1
        self._open = kind
        return out + frame(wire.ContentBlockStart(self._index, block))

    def event(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            out = b"" if self._open == "text" else self._open_block("text", wire.TextOut(""))
            if not event.text:
                return out
            return out + frame(wire.ContentBlockDelta(self._index, wire.TextDeltaOut(event.text)))
        if isinstance(event, ReasoningDelta):
            out = b""
            if self._open != "thinking":
                out = self._open_block("thinking", wire.ThinkingOut(thinking="", signature=""))
            self._thinking.append(event.text)
            if not event.text:
                return out
            return out + frame(wire.ContentBlockDelta(self._index, wire.ThinkingDeltaOut(event.text)))
        if isinstance(event, ToolCallStart):
            out = self._open_block("tool", wire.ToolUseOut(id=event.id, name=event.name, input={}))
            self._call_index = event.index
            self._args[event.index] = []
            return out
        if isinstance(event, ToolCallDelta):
            buffer = self._args.get(event.index)
            if buffer is not None:
                buffer.append(event.arguments)
            return b""
        # Finished / UsageReport / UpstreamInfo: kept by the pipeline's accumulator for `finish`.
        return b""

    def finish(self, completion: Completion) -> bytes:
        out = self._close()
        usage = usage_out(completion.usage, self._meta.cost_usd)
        if completion.usage is None:
            usage.input_tokens = self._meta.input_token_estimate
        delta = wire.StopInfo(stop_reason(completion), stop_sequence(completion))
        return out + frame(wire.MessageDelta(delta, usage)) + frame(wire.MessageStop())

    def error(self, error: RunapiError) -> bytes:
        # The SDK raises on `event: error`; the block left open does not matter after that (§3.6).
        return frame(envelope(error, self._meta.request_id))

    def keepalive(self) -> bytes:
        return _PING
