"""Fold a canonical event stream into a `Completion`."""

from __future__ import annotations

from runapi.canonical.types import (
    Completion,
    Event,
    Finished,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    UpstreamInfo,
    UsageReport,
)


class Accumulator:
    """Collects deltas; consecutive deltas of one kind merge into one part, so interleaved
    reasoning → tool call → reasoning keeps its order (MiniMax's interleaved thinking)."""

    __slots__ = ("_buf", "_calls", "_kind", "completion", "output_chars")

    def __init__(self) -> None:
        self.completion = Completion()
        self._kind: str | None = None
        self._buf: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, args...]
        self.output_chars = 0

    def _flush(self) -> None:
        if self._kind == "text" and self._buf:
            self.completion.parts.append(TextPart("".join(self._buf)))
        elif self._kind == "reasoning" and self._buf:
            self.completion.parts.append(ReasoningPart("".join(self._buf)))
        self._buf = []
        self._kind = None

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            if self._kind != "text":
                self._flush()
                self._kind = "text"
            self._buf.append(event.text)
            self.output_chars += len(event.text)
        elif isinstance(event, ReasoningDelta):
            if self._kind != "reasoning":
                self._flush()
                self._kind = "reasoning"
            self._buf.append(event.text)
            self.output_chars += len(event.text)
        elif isinstance(event, ToolCallStart):
            self._flush()
            self._calls[event.index] = [event.id, event.name]
            # Placeholder keeps the call's position among the parts; filled in by `finish`.
            self.completion.parts.append(ToolCallPart(id=event.id, name=event.name, arguments=""))
        elif isinstance(event, ToolCallDelta):
            call = self._calls.get(event.index)
            if call is not None:
                call.append(event.arguments)
                self.output_chars += len(event.arguments)
        elif isinstance(event, Finished):
            self.completion.finish_reason = event.reason
            self.completion.stop_sequence = event.stop_sequence
        elif isinstance(event, UsageReport):
            self.completion.usage = event.usage
        elif isinstance(event, UpstreamInfo):
            self.completion.upstream_id = event.upstream_id

    def finish(self) -> Completion:
        self._flush()
        if self._calls:
            by_id = {c[0]: "".join(c[2:]) for c in self._calls.values()}
            self.completion.parts = [
                ToolCallPart(id=p.id, name=p.name, arguments=by_id.get(p.id, p.arguments))
                if isinstance(p, ToolCallPart)
                else p
                for p in self.completion.parts
            ]
            self._calls = {}
        return self.completion


def events_of(completion: Completion) -> list[Event]:
    """The inverse of `Accumulator`: replay a stored completion as events (for task replay)."""
    events: list[Event] = []
    if completion.upstream_id:
        events.append(UpstreamInfo(completion.upstream_id))
    index = 0
    for part in completion.parts:
        if isinstance(part, TextPart):
            events.append(TextDelta(part.text))
        elif isinstance(part, ReasoningPart):
            events.append(ReasoningDelta(part.text))
        elif isinstance(part, ToolCallPart):
            events.append(ToolCallStart(index=index, id=part.id, name=part.name))
            if part.arguments:
                events.append(ToolCallDelta(index=index, arguments=part.arguments))
            index += 1
    if completion.finish_reason is not None:
        events.append(Finished(completion.finish_reason, completion.stop_sequence))
    if completion.usage is not None:
        events.append(UsageReport(completion.usage))
    return events
