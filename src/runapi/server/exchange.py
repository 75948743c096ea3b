"""One HTTP request and its answer, as the generation routes see it, whatever server carries it.

The generation routes run on two servers: aiohttp.web (every route, and the in-process tests) and
the lean HTTP/1.1 protocol in `runapi.server.lean` (`runapi serve`, the three generation routes
only). Both hand the pipeline an `Exchange`; the pipeline answers with a `Reply` (a whole body) or
writes a stream through the exchange and returns `STREAMED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from multidict import CIMultiDictProxy


@dataclass(slots=True)
class Reply:
    """A whole answer: status, headers and body, written by the server that carries the exchange."""

    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str = "application/json"


class _Streamed:
    """The answer was a stream, already written through `Exchange.write`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STREAMED"


STREAMED: Final = _Streamed()

SSE_CONTENT_TYPE: Final = "text/event-stream; charset=utf-8"
#: Headers of every event stream besides its Content-Type (they keep proxies from buffering it).
SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
Answer = Reply | _Streamed


class Exchange(Protocol):
    """The request side is read once; the stream side is `start_stream`, `write`…, `end_stream`."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    @property
    def stream_started(self) -> bool: ...

    async def read_body(self, limit: int) -> bytes:
        """The whole body; `PayloadTooLarge` past `limit` bytes, `InvalidRequest` if it is cut short."""
        ...

    async def start_stream(self, status: int, headers: dict[str, str]) -> None:
        """Begin an event stream (`SSE_CONTENT_TYPE`, chunked on HTTP/1.1) with these headers."""
        ...

    async def write(self, data: bytes) -> None:
        """Send part of a streamed answer; `ConnectionError` once the client is gone."""
        ...

    async def end_stream(self) -> None: ...


__all__ = ["SSE_CONTENT_TYPE", "SSE_HEADERS", "STREAMED", "Answer", "Exchange", "Reply"]
