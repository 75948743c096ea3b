"""Canonical events → Responses SSE (protocols.md §2.5, §6.9).

Every event carries `sequence_number` (0, 1, 2, ...) and an `event:` line equal to its `type`.
Items open in output-index order: a change of kind (reasoning / text / function call) closes the
open item with its `.done` events and opens the next. Reasoning streams as `reasoning_text`
content, so the item carries the raw text (and the sealed copy in `encrypted_content`).

The final `response.completed` carries the items exactly as this encoder closed them, so the
SDK's identity checks (same ids in `added`, `done` and the final output) always hold.
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
    ToolCallPart,
    ToolCallStart,
)
from runapi.canonical.codec import ResponseMeta
from runapi.errors import RunapiError
from runapi.surfaces.openai_responses import response as wire
from runapi.surfaces.openai_responses.render import (
    Echo,
    error_code,
    function_call_item,
    incomplete_details,
    item_id,
    message_item,
    reasoning_item,
    response_object,
    usage_out,
)
from runapi.surfaces.reasoning_signature import ReasoningSigner

_encoder = msgspec.json.Encoder()
_KEEPALIVE = b": keep-alive\n\n"

_Kind = Literal["reasoning", "text", "tool"]


class _Call:
    __slots__ = ("args", "id", "name", "output_index")

    def __init__(self, output_index: int, call_id: str, name: str) -> None:
        self.output_index = output_index
        self.id = call_id
        self.name = name
        self.args: list[str] = []

    def part(self) -> ToolCallPart:
        return ToolCallPart(id=self.id, name=self.name, arguments="".join(self.args))


class ResponsesStreamEncoder:
    content_type = "text/event-stream"

    __slots__ = (
        "_buffer",
        "_call",
        "_calls",
        "_echo",
        "_item_id",
        "_items",
        "_meta",
        "_open",
        "_seq",
        "_signer",
    )

    def __init__(self, meta: ResponseMeta, signer: ReasoningSigner, echo: Echo) -> None:
        self._meta = meta
        self._signer = signer
        self._echo = echo
        self._seq = 0
        # Final state of every item, by output index; the open one is the last.
        self._items: list[wire.OutputItem] = []
        self._open: _Kind | None = None
        self._item_id = ""
        self._buffer: list[str] = []  # text of the open reasoning / message item
        self._calls: dict[int, _Call] = {}  # by the call's canonical index
        self._call: _Call | None = None  # the open one

    # ------------------------------------------------------------ framing

    def _next(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    @staticmethod
    def _frame(payload: msgspec.Struct) -> bytes:
        name = type(payload).__struct_config__.tag
        assert isinstance(name, str)
        return b"event: " + name.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"

    def _snapshot(
        self,
        status: wire.ResponseStatus,
        usage: wire.UsageOut | None = None,
        error: wire.ResponseErrorOut | None = None,
        incomplete: wire.IncompleteDetails | None = None,
    ) -> wire.ResponseOut:
        return response_object(
            self._meta,
            self._echo,
            status=status,
            output=list(self._items),
            usage=usage,
            error=error,
            incomplete=incomplete,
        )

    # ------------------------------------------------------------ items

    def _open_item(self, kind: _Kind, item: wire.OutputItem) -> bytes:
        out = self._close("completed")
        index = len(self._items)
        self._items.append(item)
        self._open, self._item_id = kind, item.id
        out += self._frame(wire.OutputItemAdded(self._next(), index, item))
        if kind == "text":
            part: wire.OutputTextOut | wire.ReasoningTextOut = wire.OutputTextOut("")
        elif kind == "reasoning":
            part = wire.ReasoningTextOut("")
        else:
            return out
        return out + self._frame(wire.ContentPartAdded(self._next(), item.id, index, 0, part))

    def _close(self, status: wire.ItemStatus) -> bytes:
        if self._open is None:
            return b""
        index = len(self._items) - 1
        out = b""
        final: wire.OutputItem
        if self._open == "tool" and self._call is not None:
            call = self._call.part()
            out += self._frame(
                wire.FunctionCallArgumentsDone(self._next(), self._item_id, index, call.arguments, call.name)
            )
            final = function_call_item(self._item_id, call, status)
            self._call = None
        else:
            text = "".join(self._buffer)
            self._buffer = []
            part: wire.OutputTextOut | wire.ReasoningTextOut
            if self._open == "text":
                out += self._frame(wire.OutputTextDone(self._next(), self._item_id, index, 0, text))
                part = wire.OutputTextOut(text)
                final = message_item(self._item_id, text, status)
            else:
                out += self._frame(wire.ReasoningTextDone(self._next(), self._item_id, index, 0, text))
                part = wire.ReasoningTextOut(text)
                final = reasoning_item(self._item_id, text, self._signer, status)
            out += self._frame(wire.ContentPartDone(self._next(), self._item_id, index, 0, part))
        self._items[index] = final
        self._open = None
        return out + self._frame(wire.OutputItemDone(self._next(), index, final))

    # ------------------------------------------------------------ StreamEncoder

    def start(self) -> bytes:
        snapshot = self._snapshot("in_progress")
        return self._frame(wire.ResponseCreated(self._next(), snapshot)) + self._frame(
            wire.ResponseInProgress(self._next(), snapshot)
        )

    def event(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._text(event.text)
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event.text)
        if isinstance(event, ToolCallStart):
            return self._tool_start(event)
        if isinstance(event, ToolCallDelta):
            return self._tool_delta(event)
        return b""  # Finished / UsageReport / UpstreamInfo: `finish` gets them in the Completion

    def _text(self, text: str) -> bytes:
        out = b""
        if self._open != "text":
            # Announced empty: `content_part.added` brings the part (§2.5).
            new_id = item_id(self._meta, "msg", len(self._items))
            item = wire.MessageItemOut(id=new_id, status="in_progress", role="assistant", content=[])
            out = self._open_item("text", item)
        self._buffer.append(text)
        if not text:
            return out
        index = len(self._items) - 1
        return out + self._frame(wire.OutputTextDelta(self._next(), self._item_id, index, 0, text))

    def _reasoning(self, text: str) -> bytes:
        out = b""
        if self._open != "reasoning":
            item = wire.ReasoningItemOut(
                id=item_id(self._meta, "rs", len(self._items)),
                summary=[],
                content=[],
                encrypted_content=None,
                status="in_progress",
            )
            out = self._open_item("reasoning", item)
        self._buffer.append(text)
        if not text:
            return out
        index = len(self._items) - 1
        return out + self._frame(wire.ReasoningTextDelta(self._next(), self._item_id, index, 0, text))

    def _tool_start(self, event: ToolCallStart) -> bytes:
        out = self._close("completed")
        index = len(self._items)
        call = _Call(index, event.id, event.name)
        out += self._open_item(
            "tool", function_call_item(item_id(self._meta, "fc", index), call.part(), "in_progress")
        )
        self._calls[event.index] = self._call = call
        return out

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        call = self._calls.get(event.index)
        if call is None:
            return b""
        call.args.append(event.arguments)
        if call is not self._call or not event.arguments:
            return b""  # a late fragment for a closed call: it reaches the final output only
        delta = wire.FunctionCallArgumentsDelta(
            self._next(), self._item_id, call.output_index, event.arguments
        )
        return self._frame(delta)

    def _late_arguments(self) -> None:
        """Fold argument fragments that arrived after their call's item closed into the final output."""
        for call in self._calls.values():
            item = self._items[call.output_index]
            if isinstance(item, wire.FunctionCallOut):
                item.arguments = "".join(call.args)

    def finish(self, completion: Completion) -> bytes:
        incomplete = incomplete_details(completion.finish_reason)
        out = self._close("incomplete" if incomplete is not None else "completed")
        self._late_arguments()
        usage = usage_out(completion.usage, self._meta.cost_usd)
        if incomplete is not None:
            snapshot = self._snapshot("incomplete", usage=usage, incomplete=incomplete)
            return out + self._frame(wire.ResponseIncomplete(self._next(), snapshot))
        snapshot = self._snapshot("completed", usage=usage)
        return out + self._frame(wire.ResponseCompleted(self._next(), snapshot))

    def error(self, error: RunapiError) -> bytes:
        # §2.5: `response.failed` with the error, then an `error` event; the stream ends after them.
        out = self._close("incomplete")
        failure = wire.ResponseErrorOut(code=error_code(error), message=error.message)
        out += self._frame(wire.ResponseFailed(self._next(), self._snapshot("failed", error=failure)))
        return out + self._frame(wire.ErrorEvent(self._next(), error.code, error.message, error.param))

    def keepalive(self) -> bytes:
        return _KEEPALIVE
