"""The upstream HTTP client interface every adapter talks to.

One `UpstreamClient` per upstream, built once at startup. It sends a JSON POST and hands back the
response as soon as the headers are in; the body is then read as an async iterator of bytes.
Transport failures are raised as our own errors (`UpstreamUnavailable`, `UpstreamTimeout`,
`UpstreamError`), so adapters map only what the upstream *said*, never what the socket did.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Mapping

from runapi.errors import RunapiError

#: Error bodies are read whole; anything this large is not an error body worth showing.
ERROR_BODY_LIMIT = 64 * 1024
#: How long to wait for the end of a body the caller no longer needs before giving up on reuse.
DRAIN_SECONDS = 1.0


class UpstreamResponse(abc.ABC):
    """A response whose body has not been read yet.

    Always finish with `aclose()`: after the body was read to the end it returns the connection to
    the pool; before that (client gone, error) it aborts the connection, because a half-read
    connection can never be reused.
    """

    status: int

    @abc.abstractmethod
    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]:
        """The body, in the pieces the network delivered (chunked encoding already removed)."""

    async def read(self, limit: int = ERROR_BODY_LIMIT) -> bytes:
        """The rest of the body, up to `limit` bytes (the rest is dropped)."""
        parts: list[bytes] = []
        size = 0
        async for piece in self:
            parts.append(piece)
            size += len(piece)
            if size >= limit:
                break
        return b"".join(parts)[:limit]

    async def drain(self, seconds: float = DRAIN_SECONDS) -> None:
        """Read and drop what is left of a body the caller is done with (the chunked terminator
        after `[DONE]`, typically), so `aclose()` can reuse the connection. Bounded in time and
        size: past either bound the connection is simply aborted."""
        size = 0
        try:
            async with asyncio.timeout(seconds):
                async for piece in self:
                    size += len(piece)
                    if size > ERROR_BODY_LIMIT:
                        return
        except (TimeoutError, RunapiError):
            return

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the connection (body fully read) or abort it (anything else). Idempotent."""


class UpstreamClient(abc.ABC):
    """A pooled client bound to one base URL. Open with `start()`, close with `aclose()`."""

    base_url: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Create pools; must run inside the event loop that will use the client."""

    @abc.abstractmethod
    async def post_json_stream(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> UpstreamResponse:
        """POST `body` (JSON) to base URL + `path`; return once the status and headers arrived."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...
