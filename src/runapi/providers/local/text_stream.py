"""Token pieces → text deltas: incremental UTF-8 decoding and stop strings, safe for streams."""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextAssembler:
    """Feeds on the bytes of each generated token and returns the text that is safe to emit.

    A token can end in the middle of a multi-byte character (emoji, CJK), so bytes go through an
    incremental decoder that keeps the partial character until its last byte arrives. With stop
    strings, the tail that could still grow into one is held back, so a stop string split across
    tokens never reaches the client; `matched` names the stop string once one is complete.
    """

    __slots__ = ("_decoder", "_pending", "_stops", "matched")

    def __init__(self, stops: Sequence[str] = ()) -> None:
        # "replace": a model can emit invalid byte sequences; they must not abort the stream.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.matched: str | None = None

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that can be emitted now (maybe empty)."""
        if self.matched is not None:
            return ""
        self._pending += self._decoder.decode(piece)
        return self._release(final=False)

    def flush(self) -> str:
        """Generation ended: return whatever is still held back.

        The bytes of a character cut off by the token limit are dropped rather than shown as
        U+FFFD: the character was never finished.
        """
        if self.matched is not None:
            return ""
        self._decoder.reset()
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        text = self._pending
        if not self._stops:
            self._pending = ""
            return text
        cut = -1
        for stop in self._stops:
            at = text.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut, self.matched = at, stop
        if cut != -1:
            self._pending = ""
            return text[:cut]
        keep = 0 if final else self._partial_stop_suffix(text)
        self._pending = text[len(text) - keep :]
        return text[: len(text) - keep]

    def _partial_stop_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
