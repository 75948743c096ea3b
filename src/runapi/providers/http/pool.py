"""A lean HTTP/1.1 keep-alive client for plain `http://` upstreams, on asyncio + httptools.

aiohttp's `ClientSession` costs about 130 µs per request in request objects, header handling,
timeout handles and its parser; this does the same work in about 15 µs (performance.md). It covers
exactly what a loopback or private-network upstream needs (the simulator, vLLM, llama.cpp):
- one POST per connection at a time, connections reused LIFO (the warmest is the likeliest alive);
- a connect timeout, and a read timeout for the headers and for every gap between body pieces;
- a retry on a fresh connection when a *reused* connection dies before sending a single byte
  (the server closed it while idle: nothing was processed, so resending is safe);
- content-length, chunked and read-until-close bodies (httptools decodes them);
- back-pressure: reading pauses when a consumer falls behind;
- early close aborts the socket; only a fully received response returns its connection.
TLS and proxies stay with aiohttp (`aiohttp_client.py`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from runapi.errors import RunapiError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from runapi.providers.http.base import DRAIN_SECONDS, UpstreamClient, UpstreamResponse

_HIGH_WATER = 256 * 1024  # buffered body bytes before reading pauses
_LOW_WATER = 64 * 1024


class _Expired(Exception):
    """A read timeout fired (kept apart from TimeoutError raised by anything else)."""


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


class _Connection(asyncio.Protocol):
    """One socket and the state of the response currently arriving on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser: httptools.HttpResponseParser | None = None
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.error: BaseException | None = None

    # ------------------------------------------------------------- request side

    def send(self, data: bytes) -> None:
        self._reset()
        self.parser = httptools.HttpResponseParser(self)
        assert self.transport is not None
        self.transport.write(data)

    def detach(self) -> None:
        """The response is complete: ready for the next request."""
        self.parser = None
        self.chunks = collections.deque()
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        self.parser = None
        if self.transport is not None:
            self.transport.abort()

    async def wait(self, seconds: float) -> None:
        # A bare timer handle: cheaper than `asyncio.timeout()` on every body piece.
        fut = self.loop.create_future()
        self.waiter = fut
        timer = self.loop.call_later(seconds, _expire, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self.waiter = None

    def take(self) -> bytes:
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    @property
    def until_close(self) -> bool:
        """The body has no length and no chunking: it ends when the server closes."""
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        parser = self.parser
        if parser is None:
            # Bytes on an idle connection: the server is confused; never reuse it.
            self.abort()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = exc
            self.abort()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.parser is not None and not self.complete:
            if exc is None and self.headers_done and self.until_close:
                self.complete = True  # a read-until-close body ends here
            elif self.error is None:
                self.error = exc or ConnectionResetError("upstream closed the connection")
        self._wake()

    # ------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()


class PooledHttp1Client(UpstreamClient):
    """`UpstreamClient` for one `http://host:port/prefix` base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        default_headers: Mapping[str, str],
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"PooledHttp1Client serves plain http:// URLs, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        host_header = self._host if self._port == 80 else f"{self._host}:{self._port}"
        if ":" in self._host:  # IPv6 literal
            host_header = f"[{self._host}]" if self._port == 80 else f"[{self._host}]:{self._port}"
        static = {"host": host_header, "content-type": "application/json", "user-agent": "runapi"}
        static.update({k.lower(): v for k, v in default_headers.items()})
        self._static_headers = _encode_headers(static)
        self._heads: dict[str, bytes] = {}
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    async def start(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)

    async def post_json_stream(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> UpstreamResponse:
        if self._closed:
            raise UpstreamUnavailable("The upstream client is closed.")
        if self._slots is None:
            await self.start()
        slots = self._slots
        assert slots is not None
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), self._connect_timeout)
            except TimeoutError as exc:
                raise UpstreamTimeout("No free upstream connection in time.") from exc
        else:
            await slots.acquire()
        try:
            request = self._head(path, headers) + b"content-length: %d\r\n\r\n" % len(body) + body
            return await self._exchange(request)
        except BaseException:
            slots.release()
            raise

    async def _exchange(self, request: bytes) -> UpstreamResponse:
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._send(conn, request)
            except _StaleConnection:
                pass  # the server dropped the idle connection as we reused it; nothing reached it
        conn = await self._connect()
        try:
            return await self._send(conn, request)
        except _StaleConnection as exc:
            raise _disconnected(self.base_url) from exc

    async def _send(self, conn: _Connection, request: bytes) -> UpstreamResponse:
        try:
            conn.send(request)
            await self._wait_headers(conn)
        except BaseException:
            conn.abort()
            raise
        return _PooledResponse(self, conn)

    async def _wait_headers(self, conn: _Connection) -> None:
        while not conn.headers_done:
            if conn.error is not None or conn.closed:
                if not conn.got_bytes:
                    raise _StaleConnection
                raise _disconnected(self.base_url)
            try:
                await conn.wait(self._read_timeout)
            except _Expired as exc:
                raise UpstreamTimeout("The upstream did not answer in time.") from exc

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self._host, self._port),
                self._connect_timeout,
            )
        except TimeoutError as exc:
            raise UpstreamTimeout("Connecting to the upstream timed out.") from exc
        except OSError as exc:
            raise UpstreamUnavailable(f"The upstream is unreachable: {exc}") from exc
        return conn

    def _head(self, path: str, headers: Mapping[str, str] | None) -> bytes:
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = (
                b"POST " + (self._prefix + path).encode("ascii") + b" HTTP/1.1\r\n" + self._static_headers
            )
        if headers:
            head += _encode_headers({k.lower(): v for k, v in headers.items()})
        return head

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed and len(self._idle) < self._max_connections:
            conn.detach()
            self._idle.append(conn)
        else:
            conn.abort()
        if self._slots is not None:
            self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()


class _StaleConnection(Exception):
    """The connection died before a single response byte arrived."""


def _disconnected(base_url: str) -> RunapiError:
    return UpstreamError("The upstream closed the connection mid-response.", code="upstream_disconnected")


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n"):
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class _PooledResponse(UpstreamResponse):
    __slots__ = ("_client", "_closed", "_conn", "status")

    def __init__(self, client: PooledHttp1Client, conn: _Connection) -> None:
        self._client = client
        self._conn = conn
        self._closed = False
        self.status = conn.status

    def header(self, name: str) -> str | None:
        return self._conn.headers.get(name.lower())

    def __aiter__(self) -> _PooledResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if conn.chunks:
                return conn.take()
            if conn.complete or self._closed:
                raise StopAsyncIteration
            if conn.error is not None or conn.closed:
                raise _disconnected(self._client.base_url)
            try:
                await conn.wait(self._client._read_timeout)
            except _Expired as exc:
                raise UpstreamTimeout("The upstream stopped sending mid-response.") from exc

    async def drain(self, seconds: float = DRAIN_SECONDS) -> None:
        if self._conn.complete:
            return  # the usual case: the terminator came with the last event
        await super().drain(seconds)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        self._client._release(conn, conn.complete and conn.keep_alive and not conn.closed)
