"""Sending an answer on time: pacing, the in-stream error, and the abrupt disconnect.

Pacing follows a schedule computed from the request's arrival: the first token is due at
``ttft``, token ``n`` (counting from 1) at ``ttft + (n - 1) / tps``, and a chunk leaves when its
last token is due. Sleeping until a deadline instead of for an interval keeps the stream from
drifting when the event loop is busy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from .chunks import DONE, StreamFrames

__all__ = ["Pacing", "send_stream", "wait_for_completion"]


@dataclass(frozen=True, slots=True)
class Pacing:
    start: float
    """Event-loop time the request arrived."""
    ttft: float
    """Seconds before the first token."""
    tps: float
    """Tokens per second after the first; 0 = no pacing."""

    def due(self, tokens_so_far: int) -> float:
        """Loop time at which the ``tokens_so_far``-th token is ready."""
        if self.tps <= 0:
            return self.start + self.ttft
        return self.start + self.ttft + max(tokens_so_far - 1, 0) / self.tps


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def wait_for_completion(pacing: Pacing, tokens: int) -> None:
    """A non-stream answer is ready when its last token would have been streamed."""
    if pacing.ttft or pacing.tps:
        await _sleep_until(pacing.due(tokens))


Break = Literal["error", "disconnect"]


async def send_stream(
    request: web.Request,
    response: web.StreamResponse,
    frames: StreamFrames,
    pacing: Pacing,
    *,
    send_done: bool,
    brk: Break | None = None,
    error_frame: bytes = b"",
) -> None:
    """Write the stream (``response`` already prepared). With ``brk``, stop after ``frames.cut``
    body frames and either send ``error_frame`` and end the body, or drop the connection."""
    body = frames.body if brk is None or frames.cut is None else frames.body[: frames.cut]
    if brk is None:
        tail = [frames.finish]
        if frames.usage is not None:
            tail.append(frames.usage)
        if send_done:
            tail.append(DONE)
    elif brk == "error":
        tail = [error_frame]
    else:
        tail = []

    try:
        if pacing.tps <= 0:
            # Fast path for benchmarks: one deadline, one write.
            if pacing.ttft:
                await _sleep_until(pacing.due(0))
            await response.write(b"".join([f.data for f in body] + tail))
        else:
            produced = 0
            for frame in body:
                produced += frame.tokens
                await _sleep_until(pacing.due(max(produced, 1)))
                await response.write(frame.data)
            if tail:
                await response.write(b"".join(tail))
        if brk == "disconnect":
            # Close without the terminating zero-length chunk: the client sees a body cut short.
            # close() rather than abort(): an RST could discard bytes the client has not read yet.
            if request.transport is not None:
                request.transport.close()
            return
        await response.write_eof()
    except ConnectionError:
        # The client went away; nothing left to deliver.
        return
