"""Chat Completions chunks → canonical events (protocols.md §1.6, §5.4, §5.5, §6.5, §6.9).

`StreamTranslator` keeps the per-stream state: the tool-call table keyed by the upstream's index,
the `<think>` parser, the finish reason and the latest usage. It appends events to a caller's list,
so a network read that carried ten chunks costs one list, not ten.

Rules it implements:
- reasoning comes from `reasoning_content`, else `reasoning`, else the `reasoning_details` texts of
  the same delta (MiniMax sends both forms of the same fragment: counting both would double it);
- `content` runs through the `<think>` parser when one is configured, and its text through the
  `<minimax:tool_call>` parser when the upstream may leak raw tool calls (`providers/tool_tags.py`);
- a tool call starts once its id and name are known; argument fragments that came earlier are
  released with the start (servers differ in which fragment carries what);
- `stop` with tool calls present is reported as `tool_calls`;
- the end of the stream (`[DONE]`, or EOF after a finish reason) emits the usage last; EOF with
  neither a finish reason nor usage means the connection was cut, which is an error.
"""

from __future__ import annotations

import logging

from runapi.canonical import (
    Event,
    Finished,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UpstreamInfo,
    Usage,
    UsageReport,
)
from runapi.errors import UpstreamError
from runapi.ids import new_ulid
from runapi.providers.openai_wire.wire import Choice, Chunk, Delta, UsageWire
from runapi.providers.openai_wire.wire import ToolCallDelta as WireToolCallDelta
from runapi.providers.think import ThinkMode, ThinkParser
from runapi.providers.tool_tags import RawToolCall, ToolTagParser

log = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "sensitive": "content_filter",
}


class _Call:
    __slots__ = ("args", "id", "index", "name", "started")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.args: list[str] = []
        self.started = False
        self.index = -1  # our index, assigned at start


def usage_of(wire: UsageWire) -> Usage:
    cached = wire.prompt_tokens_details.cached_tokens if wire.prompt_tokens_details else None
    reasoning = wire.completion_tokens_details.reasoning_tokens if wire.completion_tokens_details else None
    return Usage(
        input_tokens=wire.prompt_tokens,
        output_tokens=wire.completion_tokens,
        cached_input_tokens=cached or 0,
        reasoning_tokens=reasoning or 0,
    )


class StreamTranslator:
    __slots__ = (
        "_calls",
        "_finished",
        "_info_sent",
        "_last_key",
        "_next_index",
        "_spare_key",
        "_stops",
        "_tags",
        "_think",
        "_upstream_id",
        "_usage",
    )

    def __init__(
        self,
        *,
        think_mode: ThinkMode = "never",
        stops: tuple[str, ...] = (),
        upstream_id: str | None = None,
        tool_tags: ToolTagParser | None = None,
    ) -> None:
        self._think = ThinkParser(think_mode) if think_mode != "never" else None
        self._tags = tool_tags
        self._stops = stops
        self._upstream_id = upstream_id
        self._info_sent = False
        self._calls: dict[int, _Call] = {}
        self._last_key: int | None = None
        self._spare_key = -1  # keys for calls the server sent without an index
        self._next_index = 0
        self._finished = False
        self._usage: UsageWire | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self, out: list[Event]) -> None:
        """Before the first chunk: announce the upstream id when a response header carried it."""
        if self._upstream_id and not self._info_sent:
            self._info_sent = True
            out.append(UpstreamInfo(self._upstream_id))

    def feed(self, chunk: Chunk, out: list[Event]) -> None:
        if not self._info_sent:
            self._info_sent = True
            if chunk.id:
                out.append(UpstreamInfo(chunk.id))
        if chunk.usage is not None:
            self._usage = chunk.usage  # servers that repeat usage send running totals: keep the last
        for choice in chunk.choices:
            if choice.index != 0 or self._finished:
                continue  # n is always 1 upstream; anything after the finish is noise
            delta = choice.delta or choice.message
            if delta is not None:
                self._delta(delta, out)
            if choice.finish_reason:
                self._finish(choice, out)

    def end(self, out: list[Event], *, done: bool) -> None:
        """The stream is over: `done` when the server said `[DONE]` (or sent a whole body)."""
        if not self._finished:
            if not done and self._usage is None:
                raise UpstreamError(
                    "The upstream stream ended before the response was complete.",
                    code="upstream_disconnected",
                )
            self._finish(None, out)
        if self._usage is not None:
            out.append(UsageReport(usage_of(self._usage)))
            self._usage = None

    # ------------------------------------------------------------------ deltas

    def _delta(self, delta: Delta, out: list[Event]) -> None:
        reasoning = delta.reasoning_content or delta.reasoning
        if not reasoning and delta.reasoning_details:
            reasoning = "".join(d.text for d in delta.reasoning_details if d.text)
        if reasoning:
            out.append(ReasoningDelta(reasoning))
        if delta.content:
            if self._think is None:
                self._text(delta.content, out)
            else:
                self._emit_split(self._think.feed(delta.content), out)
        if delta.tool_calls:
            for fragment in delta.tool_calls:
                self._tool_fragment(fragment, out)

    def _emit_split(self, split: tuple[str, str], out: list[Event]) -> None:
        reasoning, text = split
        if reasoning:
            out.append(ReasoningDelta(reasoning))
        if text:
            self._text(text, out)

    def _text(self, text: str, out: list[Event]) -> None:
        if self._tags is None:
            out.append(TextDelta(text))
            return
        shown, calls = self._tags.feed(text)
        if shown:
            out.append(TextDelta(shown))
        for call in calls:
            self._raw_call(call, out)

    def _raw_call(self, call: RawToolCall, out: list[Event]) -> None:
        """A call the model wrote into its text: whole, so it starts and ends at once."""
        index = self._next_index
        self._next_index += 1
        out.append(ToolCallStart(index=index, id="call_" + new_ulid().lower(), name=call.name))
        out.append(ToolCallDelta(index=index, arguments=call.arguments))

    def _end_think(self, out: list[Event]) -> None:
        """Inline reasoning cannot continue past a tool call or the finish: release what is held."""
        if self._think is not None:
            self._emit_split(self._think.finish(), out)

    def _tool_fragment(self, fragment: WireToolCallDelta, out: list[Event]) -> None:
        key = fragment.index
        if key is None:
            # No index (some servers): a fragment with an id opens a new call, one without
            # continues the latest.
            if fragment.id is None and self._last_key is not None:
                key = self._last_key
            else:
                key = self._spare_key
                self._spare_key -= 1
        call = self._calls.get(key)
        if call is not None and fragment.id and call.id and fragment.id != call.id:
            # A new id on a used index: the server numbers calls per chunk. Keep both.
            self._calls[self._spare_key] = call
            self._spare_key -= 1
            call = None
        if call is None:
            call = self._calls[key] = _Call()
        self._last_key = key
        if fragment.id and not call.id:
            call.id = fragment.id
        arguments = None
        if fragment.function is not None:
            if fragment.function.name and not call.name:
                call.name = fragment.function.name
            arguments = fragment.function.arguments
        if call.started:
            if arguments:
                out.append(ToolCallDelta(index=call.index, arguments=arguments))
            return
        if arguments:
            call.args.append(arguments)
        if call.id and call.name:
            self._start_call(call, out)

    def _start_call(self, call: _Call, out: list[Event]) -> None:
        if self._next_index == 0:
            self._end_think(out)
        assert call.id is not None
        assert call.name is not None
        call.started = True
        call.index = self._next_index
        self._next_index += 1
        out.append(ToolCallStart(index=call.index, id=call.id, name=call.name))
        if call.args:
            out.append(ToolCallDelta(index=call.index, arguments="".join(call.args)))
            call.args = []

    # ------------------------------------------------------------------ finish

    def _finish(self, choice: Choice | None, out: list[Event]) -> None:
        self._end_think(out)
        if self._tags is not None:
            rest = self._tags.finish()  # a block that never closed is text after all
            if rest:
                out.append(TextDelta(rest))
        for call in self._calls.values():
            if call.started:
                continue
            if not call.name:
                log.warning("dropping a streamed tool call that never got a name (id=%s)", call.id)
                continue
            if not call.id:
                call.id = "call_" + new_ulid().lower()
            self._start_call(call, out)
        self._finished = True
        raw = choice.finish_reason if choice is not None else None
        reason: FinishReason = _FINISH_REASONS.get(raw or "stop", "stop")
        if reason == "stop" and self._next_index:
            reason = "tool_calls"
        stop_sequence: str | None = None
        matched = choice.stop_reason if choice is not None else None
        if reason == "stop" and isinstance(matched, str) and matched in self._stops:
            # vLLM honoured `stop` itself and names the match: report it like our own filter would.
            reason, stop_sequence = "stop_sequence", matched
        out.append(Finished(reason=reason, stop_sequence=stop_sequence))
