"""Gateway-side stop sequences over a canonical event stream.

MiniMax ignores `stop` (protocols.md §5.3), so the gateway enforces it: text is cut just before the
first stop sequence to complete, and the turn ends with `Finished(reason="stop_sequence")`. Streams
stay correct because only a tail that could still become a stop sequence (at most the longest one,
minus a character) is held back; everything else is released at once.

Only text deltas are searched. Any other event ends the current text run, so a stop sequence never
matches across reasoning or a tool call. After a match the rest of the turn is dropped, except
`UsageReport` and `UpstreamInfo`: billing needs the upstream's usage for the tokens it generated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from runapi.canonical.types import Event, Finished, TextDelta, UpstreamInfo, UsageReport

__all__ = ["StopSequenceFilter", "apply_stop_sequences", "find_stop"]


def find_stop(text: str, stops: Iterable[str]) -> tuple[int, str] | None:
    """The stop sequence that completes first in `text` and where it starts, or None.

    "Completes first" (the smallest end offset; the earlier start on a tie) is what a streaming
    generator sees first, so this does not depend on how the text was chunked.
    """
    best: tuple[int, int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        start = text.find(stop)
        if start < 0:
            continue
        key = (start + len(stop), start, stop)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else (best[1], best[2])


class StopSequenceFilter:
    """Feed events in order; each call returns the events to pass on. Pure and synchronous."""

    __slots__ = ("_done", "_held", "_stops")

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._held = ""
        self._done = False

    @property
    def matched(self) -> bool:
        return self._done

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return [event] if isinstance(event, UsageReport | UpstreamInfo) else []
        if isinstance(event, TextDelta):
            return self._text(event.text)
        out = self._release()
        out.append(event)
        return out

    def finish(self) -> list[Event]:
        """Release a held tail when the stream ends without a `Finished` (it should not)."""
        return [] if self._done else self._release()

    def _release(self) -> list[Event]:
        if not self._held:
            return []
        held, self._held = self._held, ""
        return [TextDelta(held)]

    def _text(self, text: str) -> list[Event]:
        buf = self._held + text
        match = find_stop(buf, self._stops)
        if match is not None:
            start, stop = match
            self._done = True
            self._held = ""
            out: list[Event] = [TextDelta(buf[:start])] if start else []
            out.append(Finished(reason="stop_sequence", stop_sequence=stop))
            return out
        keep = self._partial_tail(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        release = buf[: len(buf) - keep]
        return [TextDelta(release)] if release else []

    def _partial_tail(self, buf: str) -> int:
        """Length of the longest suffix of `buf` that a stop sequence starts with."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buf)), longest, -1):
                if buf.endswith(stop[:size]):
                    longest = size
                    break
        return longest


async def apply_stop_sequences(events: AsyncIterator[Event], stops: Iterable[str]) -> AsyncIterator[Event]:
    """Wrap an event stream with a `StopSequenceFilter`; closing this closes `events` too."""
    flt = StopSequenceFilter(stops)
    try:
        async for event in events:
            for out in flt.feed(event):
                yield out
        for out in flt.finish():
            yield out
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
