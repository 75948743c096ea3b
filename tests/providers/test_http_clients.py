"""Both upstream HTTP clients against a scripted loopback server: bodies, reuse, early close,
timeouts, stale connections, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from runapi.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from runapi.providers.http import (
    AiohttpUpstreamClient,
    PooledHttp1Client,
    UpstreamClient,
    build_upstream_client,
)
from runapi.settings import UpstreamSettings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Upstream", bytes], Awaitable[bool]]


@dataclass
class Upstream:
    """A tiny HTTP/1.1 server; the request path picks the behaviour. Counts connections."""

    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    client_gone: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length)
    return path, body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def wait_for_eof(reader: asyncio.StreamReader, upstream: Upstream) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(1024):
            pass
    upstream.client_gone.set()


async def serve(upstream: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    upstream.connections += 1
    served_here = 0
    try:
        while True:
            request = await read_request(reader)
            if request is None:
                return
            path, body = request
            upstream.requests.append(body)
            served_here += 1
            if path.endswith("/chunked"):
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                writer.write(chunked(b"data: one\n\n", b"data: two\n\n", body))
            elif path.endswith("/length"):
                payload = b"x" * 10 + body
                writer.write(
                    b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\nX-Trace: t1\r\n\r\n%s"
                    % (len(payload), payload)
                )
            elif path.endswith("/big"):
                payload = bytes(range(256)) * 8192  # 2 MiB
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload))
                writer.write(payload)
            elif path.endswith("/until-close"):
                writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
                await writer.drain()
                return
            elif path.endswith("/hang-after-first"):
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                writer.write(b"5\r\nfirst\r\n")
                await writer.drain()
                await wait_for_eof(reader, upstream)
                return
            elif path.endswith("/no-answer"):
                await wait_for_eof(reader, upstream)
                return
            elif path.endswith("/cut-mid-body"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
                await writer.drain()
                return
            elif path.endswith("/one-per-connection-then-drop"):
                if served_here > 1:
                    return  # an idle connection the server had given up on: close, no reply
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    up.server = await asyncio.start_server(lambda r, w: serve(up, r, w), "127.0.0.1", 0)
    up.port = up.server.sockets[0].getsockname()[1]
    yield up
    up.server.close()


def make(kind: str, url: str, **overrides: float) -> UpstreamClient:
    cls = PooledHttp1Client if kind == "pool" else AiohttpUpstreamClient
    options = {"connect_timeout": 2.0, "read_timeout": 5.0, "max_connections": 4, **overrides}
    return cls(
        url,
        connect_timeout=options["connect_timeout"],
        read_timeout=options["read_timeout"],
        max_connections=int(options["max_connections"]),
        default_headers={"authorization": "Bearer k"},
    )


KINDS = ["pool", "aiohttp"]


@pytest.fixture(params=KINDS)
async def client(request: pytest.FixtureRequest, upstream: Upstream) -> AsyncIterator[UpstreamClient]:
    c = make(request.param, upstream.url)
    await c.start()
    yield c
    await c.aclose()


async def body_of(client: UpstreamClient, path: str, payload: bytes = b"{}") -> tuple[int, bytes]:
    response = await client.post_json_stream(path, payload)
    try:
        return response.status, b"".join([piece async for piece in response])
    finally:
        await response.aclose()


def test_http_urls_get_the_lean_pool_and_https_gets_aiohttp() -> None:
    settings = UpstreamSettings(kind="openai_compatible")
    assert isinstance(build_upstream_client("http://127.0.0.1:9/v1", settings, {}), PooledHttp1Client)
    assert isinstance(build_upstream_client("https://api.minimax.io/v1", settings, {}), AiohttpUpstreamClient)


async def test_chunked_body_and_keep_alive_reuse(client: UpstreamClient, upstream: Upstream) -> None:
    for n in range(3):
        status, body = await body_of(client, "/chunked", b'{"n":%d}' % n)
        assert status == 200
        assert body == b'data: one\n\ndata: two\n\n{"n":%d}' % n
    assert upstream.connections == 1


async def test_content_length_body_and_headers(client: UpstreamClient) -> None:
    response = await client.post_json_stream("/length", b"abc")
    try:
        assert response.status == 201
        assert response.header("X-TRACE") == "t1"
        assert response.header("missing") is None
        assert await response.read() == b"xxxxxxxxxxabc"
    finally:
        await response.aclose()


async def test_large_body_arrives_intact(client: UpstreamClient) -> None:
    status, body = await body_of(client, "/big")
    assert (status, body) == (200, bytes(range(256)) * 8192)


async def test_body_until_close(client: UpstreamClient, upstream: Upstream) -> None:
    assert await body_of(client, "/until-close") == (200, b"all of it")
    assert await body_of(client, "/length", b"") == (201, b"x" * 10)
    assert upstream.connections == 2  # the closed connection was not reused


async def test_early_close_aborts_the_upstream_connection(client: UpstreamClient, upstream: Upstream) -> None:
    response = await client.post_json_stream("/hang-after-first", b"{}")
    async for piece in response:
        assert piece == b"first"
        break
    await response.aclose()
    await asyncio.wait_for(upstream.client_gone.wait(), 10)
    # The aborted connection is never handed out again.
    assert await body_of(client, "/length", b"") == (201, b"x" * 10)
    assert upstream.connections == 2


async def test_read_timeout_before_headers(upstream: Upstream) -> None:
    for kind in KINDS:
        c = make(kind, upstream.url, read_timeout=0.3)
        try:
            with pytest.raises(UpstreamTimeout):
                await c.post_json_stream("/no-answer", b"{}")
        finally:
            await c.aclose()


async def test_read_timeout_mid_body(upstream: Upstream) -> None:
    for kind in KINDS:
        c = make(kind, upstream.url, read_timeout=0.3)
        response = await c.post_json_stream("/hang-after-first", b"{}")
        try:
            with pytest.raises(UpstreamTimeout):
                async for _ in response:
                    pass
        finally:
            await response.aclose()
            await c.aclose()


async def test_cut_mid_body_is_an_upstream_error(client: UpstreamClient) -> None:
    response = await client.post_json_stream("/cut-mid-body", b"{}")
    try:
        with pytest.raises(UpstreamError) as err:
            async for _ in response:
                pass
        assert err.value.code == "upstream_disconnected"
    finally:
        await response.aclose()


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for kind in KINDS:
        c = make(kind, f"http://127.0.0.1:{port}/v1")
        try:
            with pytest.raises(UpstreamUnavailable):
                await c.post_json_stream("/length", b"{}")
        finally:
            await c.aclose()


async def test_stale_idle_connection_is_retried_on_a_fresh_one(upstream: Upstream) -> None:
    c = make("pool", upstream.url)
    try:
        assert await body_of(c, "/one-per-connection-then-drop") == (200, b"ok")
        assert await body_of(c, "/one-per-connection-then-drop") == (200, b"ok")
        assert upstream.connections == 2
        assert len(upstream.requests) == 3  # the lost request on the stale connection, then the retry
    finally:
        await c.aclose()


async def test_cancel_while_waiting_frees_the_slot(upstream: Upstream) -> None:
    c = make("pool", upstream.url, max_connections=1)
    try:
        task = asyncio.ensure_future(c.post_json_stream("/no-answer", b"{}"))
        for _ in range(500):  # until the server has the request (bounded)
            if upstream.requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(upstream.client_gone.wait(), 10)
        # With one slot, this would wait forever if the cancelled request still held it.
        assert await asyncio.wait_for(body_of(c, "/length", b""), 10) == (201, b"x" * 10)
    finally:
        await c.aclose()


async def test_fully_read_but_unconsumed_response_returns_its_connection(upstream: Upstream) -> None:
    c = make("pool", upstream.url)
    try:
        response = await c.post_json_stream("/length", b"")
        for _ in range(500):  # until the whole body has arrived (bounded); nobody reads it
            if response._conn.complete:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        await response.aclose()
        assert await body_of(c, "/length", b"") == (201, b"x" * 10)
        assert upstream.connections == 1
    finally:
        await c.aclose()
