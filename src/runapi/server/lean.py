"""A lean HTTP/1.1 server for the generation routes; every other request is aiohttp's.

Why: with every gateway feature on, aiohttp.web's request and response machinery was the largest
single block of our CPU profile (bench/README, "Where our time goes"). This protocol does what
the three generation routes need on top of httptools (llhttp, the parser Node.js uses): it parses
a request, hands the pipeline an `Exchange`, and writes the answer with one `transport.write`.

Any other route, and any request this protocol does not serve, belongs to aiohttp.web, which
keeps routing, its 404/405 answers, the console, the task API and so on:
- A connection whose next request, read at a message boundary, is not `POST` to a lean route is
  handed over whole: the transport gets aiohttp's protocol and the bytes read so far.
- A non-lean request pipelined behind a lean one in the same read (HTTP pipelining, which no SDK
  does) cannot be handed over as bytes, because the parser already consumed them; from then on
  this protocol parses every request on the connection and passes each one, re-framed with a
  Content-Length, to aiohttp's protocol once the lean answers before it have been written.

The semantics aiohttp gave these routes are kept: keep-alive (with an idle timeout), HTTP/1.0,
`Expect: 100-continue`, chunked uploads, a handler canceled when its client disconnects, write
backpressure, a bounded request head, and a 413 sent before reading an oversized body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from runapi.errors import InvalidRequest, PayloadTooLarge
from runapi.server.exchange import SSE_CONTENT_TYPE, Answer, Exchange, Reply
from runapi.server.wire import CONTINUE, LAST_CHUNK, chunk, response_head

log = logging.getLogger("runapi.server")

LeanHandler = Callable[[Exchange], Awaitable[Answer]]

# A request line and headers larger than this are refused (aiohttp allows 8 KB per line).
MAX_HEAD_BYTES = 64 * 1024
# Bytes of a pipelined request kept while the one before it is answered; reading pauses above.
_MAX_PENDING = 256 * 1024
# A declared body this many times the limit is not drained after the 413: the connection closes.
_DRAIN_FACTOR = 4
_HEAD_OMITTED = frozenset({b"content-length", b"transfer-encoding", b"expect"})


class LeanServer:
    """The protocol factory handed to `loop.create_server`, and the registry of its connections."""

    def __init__(
        self,
        routes: Mapping[str, LeanHandler],
        fallback: Callable[[], asyncio.Protocol],
        *,
        max_body_bytes: int,
        on_error: Callable[[], Reply],
        keepalive_seconds: float = 75.0,
    ) -> None:
        self.routes = {path.encode(): handler for path, handler in routes.items()}
        self.fallback = fallback
        self.max_body_bytes = max_body_bytes
        self.on_error = on_error
        self.keepalive_seconds = keepalive_seconds
        self.connections: set[LeanConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False
        self._all_closed: asyncio.Event | None = None

    def __call__(self) -> LeanConnection:
        if self._sweeper is None:
            self._schedule_sweep()
        return LeanConnection(self)

    def _schedule_sweep(self) -> None:
        # One timer for all connections, not one per idle period of each.
        period = max(1.0, self.keepalive_seconds / 4)
        self._sweeper = asyncio.get_running_loop().call_later(period, self._sweep)

    def _sweep(self) -> None:
        horizon = time.monotonic() - self.keepalive_seconds
        for conn in list(self.connections):
            if conn.idle and conn.last_active < horizon:
                conn.close()
        if not self._closing:
            self._schedule_sweep()

    async def shutdown(self, grace_seconds: float) -> None:
        """Close idle connections now, let answers in flight finish (up to the grace), then close."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            if conn.relaying:
                self.forget(conn)  # aiohttp's protocol serves it now; the runner's shutdown closes it
            else:
                conn.close_when_idle()
        if self.connections:
            self._all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_seconds):
                    await self._all_closed.wait()
        for conn in list(self.connections):
            conn.abort()

    def forget(self, conn: LeanConnection) -> None:
        self.connections.discard(conn)
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()


class _Request:
    __slots__ = (
        "answered",
        "body",
        "body_size",
        "complete",
        "declared_length",
        "expect_continue",
        "handler",
        "headers",
        "keep_alive",
        "method",
        "path",
        "raw_headers",
        "relay",
        "too_large",
        "url",
        "version",
        "waiter",
    )

    def __init__(self) -> None:
        self.url = b""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.path = b""
        self.version = "1.1"
        self.keep_alive = True
        self.headers: CIMultiDictProxy[str] | None = None
        self.handler: LeanHandler | None = None
        self.body: list[bytes] = []
        self.body_size = 0
        self.declared_length: int | None = None
        self.too_large = False
        self.complete = False
        self.answered = False
        self.expect_continue = False
        self.relay = False
        self.waiter: asyncio.Future[None] | None = None

    def reframed(self) -> bytes:
        """This request as bytes for aiohttp's parser: the body de-chunked, with a Content-Length."""
        lines = [b"%s %s HTTP/%s\r\n" % (self.method, self.url, self.version.encode())]
        for name, value in self.raw_headers:
            if name.lower() not in _HEAD_OMITTED:
                lines.append(b"%s: %s\r\n" % (name, value))
        body = b"".join(self.body)
        lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
        lines.append(body)
        return b"".join(lines)


class LeanExchange:
    """`Exchange` over one lean connection and one of its requests."""

    __slots__ = ("_conn", "_head", "_req", "_started", "method", "path")

    def __init__(self, conn: LeanConnection, req: _Request) -> None:
        self._conn = conn
        self._req = req
        self._head: bytes | None = None
        self._started = False
        self.method = req.method.decode("ascii", "replace")
        self.path = req.path.decode("utf-8", "surrogateescape")

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        assert self._req.headers is not None
        return self._req.headers

    @property
    def stream_started(self) -> bool:
        return self._started

    async def read_body(self, limit: int) -> bytes:
        req = self._req
        declared = req.declared_length
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes.")
        if not req.complete:
            if req.expect_continue:
                req.expect_continue = False
                self._conn.write_raw(CONTINUE)
            req.waiter = asyncio.get_running_loop().create_future()
            await req.waiter
        if req.too_large or req.body_size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        if declared is not None and req.body_size != declared:  # pragma: no cover - llhttp frames it
            raise InvalidRequest(f"The request body ended after {req.body_size} of {declared} bytes.")
        return b"".join(req.body)

    async def start_stream(self, status: int, headers: dict[str, str]) -> None:
        req = self._req
        # Sent with the first part, in one write: status line, headers and the first event.
        self._head = response_head(
            status,
            headers,
            content_type=SSE_CONTENT_TYPE,
            content_length=None,
            keep_alive=self._conn.keeps_alive(req),
            chunked=req.version == "1.1",
        )
        self._started = True

    async def write(self, data: bytes) -> None:
        if not data:
            return
        wire = chunk(data) if self._req.version == "1.1" else data
        if self._head is not None:
            wire, self._head = self._head + wire, None
        await self._conn.write(wire)

    async def end_stream(self) -> None:
        tail = LAST_CHUNK if self._req.version == "1.1" else b""
        if self._head is not None:
            tail, self._head = self._head + tail, None
        if tail:
            await self._conn.write(tail)
        if self._req.version != "1.1":
            self._conn.close_when_idle()  # HTTP/1.0: the end of the body is the end of the connection


class LeanConnection(asyncio.Protocol):
    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.last_active = time.monotonic()
        self._parsing: _Request | None = None  # the message the parser is in
        self._head_bytes = 0
        self._current: _Request | None = None  # the request being answered
        self._task: asyncio.Task[None] | None = None
        self._queue: deque[_Request] = deque()  # parsed, waiting for the one before
        self._pending = bytearray()  # unparsed bytes that arrived while answering
        self._line = b""  # the start of a request line, until its path can be read
        self._relay: Any = None  # aiohttp's protocol, once a pipelined request needs it
        self._relay_out: list[bytes] = []
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._close_when_idle = False
        self._lost = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses; a TCP one is one.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.server.forget(self)
        if self._task is not None:
            self._task.cancel()  # the client is gone: so is the work done for it
        for req in (self._current, self._parsing):
            if req is not None and req.waiter is not None and not req.waiter.done():
                req.waiter.set_exception(ConnectionResetError("client disconnected"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("client disconnected"))
        if self._relay is not None:
            self._relay.connection_lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._relay is not None:
            self._relay.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self._relay is not None:
            self._relay.resume_writing()

    def eof_received(self) -> bool | None:
        if self._relay is not None:
            return bool(self._relay.eof_received())
        # The transport closes, and `connection_lost` cancels work in flight: a client that stops
        # sending has gone (aiohttp treats a half-close the same way).
        return None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self._relay is None and self._parsing is None:
            if self._current is not None or self._queue:
                # The next request arrived while this one is answered: keep it unparsed, so that
                # it can still be handed to aiohttp whole if it is not ours.
                self._pending += data
                if len(self._pending) > _MAX_PENDING and not self._reading_paused:
                    self._reading_paused = True
                    self._transport().pause_reading()
                return
            data = self._line + data if self._line else data
            ours = self._is_lean(data)
            if ours is None:
                self._line = data
                return
            self._line = b""
            if not ours:
                self._hand_off(data)
                return
        self._feed(data)

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self._parsing = _Request()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        assert self._parsing is not None
        self._parsing.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._parsing is not None
        self._parsing.raw_headers.append((name, value))
        self._count_head(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        req = self._parsing
        assert req is not None
        parser = self.parser
        req.method = parser.get_method()
        req.version = parser.get_http_version()
        req.keep_alive = parser.should_keep_alive()
        req.path = req.url.partition(b"?")[0]
        handler = self.server.routes.get(req.path) if req.method == b"POST" else None
        if self._relay is None and handler is None:
            self._start_relay()
        if self._relay is not None:
            req.relay = True
            if self.idle_for_relay() and any(n.lower() == b"expect" for n, _ in req.raw_headers):
                self.write_raw(CONTINUE)  # aiohttp gets the request only once it is whole
            return
        headers = CIMultiDict(
            (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for n, v in req.raw_headers
        )
        req.headers = CIMultiDictProxy(headers)
        req.handler = handler
        length = headers.get("Content-Length")
        if length is not None and length.isdigit():
            req.declared_length = int(length)
        req.expect_continue = req.version == "1.1" and headers.get("Expect", "").lower() == "100-continue"
        if self._current is None:
            self._start(req)
        else:
            self._queue.append(req)

    def on_body(self, body: bytes) -> None:
        req = self._parsing
        assert req is not None
        req.body_size += len(body)
        if req.relay or req.body_size <= self.server.max_body_bytes:
            req.body.append(body)
        elif not req.too_large:
            req.too_large = True
            req.body.clear()  # counted, not kept: the answer is a 413

    def on_message_complete(self) -> None:
        req = self._parsing
        assert req is not None
        self._parsing = None
        req.complete = True
        if req.relay:
            self._relay_out.append(req.reframed())
            self._flush_relay()
        elif req.waiter is not None and not req.waiter.done():
            req.waiter.set_result(None)
        elif req.answered:  # answered before its body was read (a 413): now the next one
            self._next()

    # ------------------------------------------------------------------ answering

    def _start(self, req: _Request) -> None:
        self._current = req
        self._task = asyncio.get_running_loop().create_task(self._answer(req))

    async def _answer(self, req: _Request) -> None:
        assert req.handler is not None
        exchange = LeanExchange(self, req)
        try:
            answer = await req.handler(exchange)
        except asyncio.CancelledError:  # `connection_lost` canceled it
            return
        except ConnectionError:
            if self._lost:
                return
            log.exception("unhandled error answering %s", exchange.path)
            answer = self.server.on_error()
        except Exception:
            log.exception("unhandled error answering %s", exchange.path)
            answer = self.server.on_error()
        if isinstance(answer, Reply):
            if exchange.stream_started:  # pragma: no cover - a handler bug; the stream is cut
                self.abort()
                return
            self._write_reply(req, answer)
        elif not exchange.stream_started:  # pragma: no cover - STREAMED without a stream
            self.abort()
            return
        req.answered = True
        self._task = None
        if req.complete:
            self._next()
        elif (
            req.expect_continue  # answered before any 100 Continue: the body will not come
            or (req.declared_length or 0) > _DRAIN_FACTOR * self.server.max_body_bytes
            or req.version != "1.1"
        ):
            self.close()
        # else: the 413 is out; the rest of the body is read and dropped, then `_next` runs

    def _write_reply(self, req: _Request, reply: Reply) -> None:
        head = response_head(
            reply.status,
            reply.headers,
            content_type=reply.content_type,
            content_length=len(reply.body),
            keep_alive=self.keeps_alive(req),
            chunked=False,
        )
        self.write_raw(head + reply.body)

    def _next(self) -> None:
        """The current request is answered and read: close, or go on with the next one."""
        req = self._current
        self._current = None
        self._task = None
        if self._lost:
            return
        if req is not None and not self.keeps_alive(req):
            self.close()
            return
        self.last_active = time.monotonic()
        if self._queue:
            self._start(self._queue.popleft())
        elif self._relay is not None:
            self._flush_relay()
        elif self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            if self._reading_paused:
                self._reading_paused = False
                self._transport().resume_reading()
            self.data_received(data)
        elif self._close_when_idle:
            self.close()

    def keeps_alive(self, req: _Request) -> bool:
        return req.keep_alive and not self._close_when_idle

    # ------------------------------------------------------------------ writing

    def write_raw(self, data: bytes) -> None:
        if not self._lost:
            self._transport().write(data)

    async def write(self, data: bytes) -> None:
        if self._lost:
            raise ConnectionResetError("client disconnected")
        self._transport().write(data)
        if self._write_paused:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    # ------------------------------------------------------------------ state

    @property
    def idle(self) -> bool:
        return self._current is None and self._parsing is None and not self._queue and self._relay is None

    @property
    def relaying(self) -> bool:
        return self._relay is not None

    def idle_for_relay(self) -> bool:
        return self._current is None and not self._queue

    def close(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.close()

    def close_when_idle(self) -> None:
        self._close_when_idle = True
        if self.idle and not self._pending:
            self.close()

    def abort(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.abort()

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None
        return self.transport

    # ------------------------------------------------------------------ parsing and hand-over

    def _is_lean(self, data: bytes) -> bool | None:
        """Whether the request starting `data` is `POST` to a lean route; None: not known yet."""
        start = 0
        while data.startswith(b"\r\n", start):  # RFC 9112 §2.2: empty lines before a request
            start += 2
        end = data.find(b"\n", start)
        if end < 0:
            return None if len(data) - start < MAX_HEAD_BYTES else False
        method, _, rest = data[start:end].partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        return method == b"POST" and target in self.server.routes

    def _hand_off(self, data: bytes) -> None:
        """The connection is aiohttp's from here: its protocol gets the transport and `data`."""
        transport = self._transport()
        self.server.forget(self)
        protocol = self.server.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._write_paused:
            protocol.pause_writing()
        protocol.data_received(data)

    def _start_relay(self) -> None:
        self._relay = self.server.fallback()
        self._relay.connection_made(self._transport())

    def _flush_relay(self) -> None:
        if self._relay_out and self.idle_for_relay():
            data = b"".join(self._relay_out)
            self._relay_out.clear()
            self._relay.data_received(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "Protocol upgrades are not supported on this route.")
        except httptools.HttpParserError as exc:
            self._refuse(431 if self._head_bytes > MAX_HEAD_BYTES else 400, f"Malformed HTTP request: {exc}")

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise httptools.HttpParserError("request head too large")

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be parsed: answer (if nothing is in flight) and close."""
        self._parsing = None
        if self._current is None and self._relay is None:
            body = (
                b'{"error":{"message":%s,"type":"invalid_request_error","code":"bad_request"}}'
                % _json_string(message)
            )
            head = response_head(
                status,
                {},
                content_type="application/json",
                content_length=len(body),
                keep_alive=False,
                chunked=False,
            )
            self.write_raw(head + body)
        self.close()


def _json_string(text: str) -> bytes:
    return json.dumps(text).encode()


__all__ = ["MAX_HEAD_BYTES", "LeanConnection", "LeanExchange", "LeanHandler", "LeanServer"]
