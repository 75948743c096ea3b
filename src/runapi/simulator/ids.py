"""Response and request ids in MiniMax's style: 32 lowercase hex characters.

Ids are unique per response (not derived from the request) so that replaying a request never
collides with an id a gateway already stored; only the generated *content* is deterministic.
They are time-ordered: seconds, then a per-process random part, then a counter.
"""

from __future__ import annotations

import itertools
import os
import time

__all__ = ["IdFactory"]


class IdFactory:
    def __init__(self) -> None:
        self._process = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{int(time.time()):08x}{self._process}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"

    def headers(self, trace_id: str) -> dict[str, str]:
        """The id headers every MiniMax response carries; ``trace-id`` equals the body ``id``."""
        return {
            "trace-id": trace_id,
            "minimax-request-id": self.new(),
            "x-mm-request-id": f"{self._process[:4]}_{trace_id[-12:]}",
        }
