"""The limiter's lean Redis client: the RESP2 parser on every split of a reply, URLs, and against
the real Redis: replies reach their own callers under concurrency, a late reply is dropped, and
connect-time AUTH and SELECT."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import uvloop

from runapi.limits.resp import (
    INCOMPLETE,
    RespClient,
    RespError,
    RespProtocolError,
    encode_command,
    parse_reply,
)
from tests.limits.conftest import REDIS_URL

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="RUNAPI_TEST_REDIS_URL is not set")

# What EVALSHA of the admit script looks like: an array of bulk strings, an integer, a null.
REPLY = b"*4\r\n$1\r\n1\r\n$5\r\n12.50\r\n:42\r\n$-1\r\n"


def test_encode_command() -> None:
    assert (
        encode_command(("EVALSHA", "ab", "1", "k"))
        == b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n"
    )
    assert encode_command(("SET", "k", "é")) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"


def test_parse_reply_whole_and_at_every_split() -> None:
    value, end = parse_reply(REPLY, 0)
    assert (value, end) == (["1", "12.50", 42, None], len(REPLY))
    for cut in range(len(REPLY)):
        partial, at = parse_reply(REPLY[:cut], 0)
        assert partial is INCOMPLETE, cut
        assert at == 0, cut  # nothing consumed: the caller waits for more bytes


def test_parse_reply_kinds() -> None:
    assert parse_reply(b"+OK\r\n", 0) == ("OK", 5)
    assert parse_reply(b":-3\r\n", 0) == (-3, 5)
    assert parse_reply(b"*-1\r\n", 0) == (None, 5)
    assert parse_reply(b"*0\r\n", 0) == ([], 4)
    error, _ = parse_reply(b"-NOSCRIPT No matching script.\r\n", 0)
    assert isinstance(error, RespError)
    assert error.kind == "NOSCRIPT"
    with pytest.raises(RespProtocolError):
        parse_reply(b"?what\r\n", 0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/3", ("127.0.0.1", 6380, 3, None, None, False, None)),
        ("redis://:s%40cret@cache", ("cache", 6379, 0, None, "s@cret", False, None)),
        ("rediss://user:pw@h:1/0", ("h", 1, 0, "user", "pw", True, None)),
        ("unix:///run/redis.sock?db=2", ("127.0.0.1", 6379, 2, None, None, False, "/run/redis.sock")),
        ("unix:///run/redis.sock", ("127.0.0.1", 6379, 0, None, None, False, "/run/redis.sock")),
    ],
)
def test_from_url(url: str, expected: tuple[object, ...]) -> None:
    c = RespClient.from_url(url)
    got = (c._host, c._port, c._db, c._username, c._password, c._tls is not None, c._unix_path)
    assert got == expected
    with pytest.raises(ValueError, match="not a Redis URL"):
        RespClient.from_url("http://127.0.0.1:6379")


@needs_redis
async def test_concurrent_callers_each_get_their_own_reply() -> None:
    assert REDIS_URL is not None
    client = RespClient.from_url(REDIS_URL)
    key = f"runapi:test:resp:{uuid.uuid4().hex}"
    try:
        values = await asyncio.gather(*(client.call("INCR", key) for _ in range(500)))
        assert sorted(values) == list(range(1, 501))
        echoed = await asyncio.gather(*(client.call("ECHO", f"caller-{i}") for i in range(200)))
        assert echoed == [f"caller-{i}" for i in range(200)]
        with pytest.raises(RespError) as caught:
            await client.call("EVALSHA", "0" * 40, "0")
        assert caught.value.kind == "NOSCRIPT"
        assert await client.call("PING") == "PONG"  # the error did not derail the order
    finally:
        await client.call("DEL", key)
        await client.aclose()


@needs_redis
async def test_commands_sent_in_one_loop_iteration_leave_in_one_write() -> None:
    assert REDIS_URL is not None
    client = RespClient.from_url(REDIS_URL)
    try:
        assert await client.call("PING") == "PONG"  # connected
        conn = client._conn
        assert conn is not None
        assert conn.transport is not None
        writes: list[bytes] = []
        real_write = conn.transport.write

        def counted(data: bytes) -> None:
            writes.append(data)
            real_write(data)

        conn.transport.write = counted  # type: ignore[method-assign]
        echoed = await asyncio.gather(*(client.call("ECHO", f"c{i}") for i in range(50)))
        assert echoed == [f"c{i}" for i in range(50)]
        assert len(writes) == 1
        assert writes[0] == b"".join(encode_command(("ECHO", f"c{i}")) for i in range(50))
    finally:
        await client.aclose()


@needs_redis
async def test_a_reply_that_arrives_after_its_caller_gave_up_is_dropped() -> None:
    assert REDIS_URL is not None
    client = RespClient.from_url(REDIS_URL)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.call("BLPOP", f"runapi:test:empty:{uuid.uuid4().hex}", "0.3")
        # The BLPOP's nil comes back first on the same connection and must not reach this caller.
        assert await client.call("ECHO", "mine") == "mine"
    finally:
        await client.aclose()


@needs_redis
async def test_select_and_auth_at_connect() -> None:
    assert REDIS_URL is not None
    key = f"runapi:test:db:{uuid.uuid4().hex}"
    base = REDIS_URL.rsplit("/", 1)[0]
    in_db_7 = RespClient.from_url(base + "/7")
    in_db_0 = RespClient.from_url(base + "/0")
    try:
        await in_db_7.call("SET", key, "x")
        assert await in_db_7.call("GET", key) == "x"
        assert await in_db_0.call("GET", key) is None
    finally:
        await in_db_7.call("DEL", key)
        await in_db_7.aclose()
        await in_db_0.aclose()
    # This Redis has no password: AUTH fails, and the connect says so instead of hanging.
    wrong = RespClient.from_url(base.replace("redis://", "redis://:nope@") + "/0")
    with pytest.raises(RespError):
        await wrong.call("PING")
    await wrong.aclose()


class _ThreadServer:
    """A RESP server on its own thread (so it answers while the test's event loop is stuck):
    `+PONG` to every command after `delay` seconds, or nothing at all when `silent`."""

    def __init__(self, delay: float = 0.0, silent: bool = False, each: float = 0.0) -> None:
        # `each`: answer the commands of a read one by one, that long apart (a Redis working
        # through a burst), instead of all together after `delay`.
        self.delay, self.silent, self.each = delay, silent, each
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(65536):
                if self.silent:
                    continue
                time.sleep(self.delay)
                if self.each:
                    for _ in range(data.count(b"*1\r\n")):
                        time.sleep(self.each)
                        conn.sendall(b"+PONG\r\n")
                else:
                    conn.sendall(b"+PONG\r\n" * data.count(b"*1\r\n"))

    def close(self) -> None:
        self.sock.close()


LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio"), pytest.param(uvloop.new_event_loop, id="uvloop")]


class _Stall:
    """Keeps the event loop stuck for `seconds`, from inside one of its own callbacks (a socket
    reader), as a burst of other work would: `await stall.after_sending()` lets the commands just
    made be sent and written, then stalls the loop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._r, self._w = socket.socketpair()

    def __enter__(self) -> _Stall:
        asyncio.get_running_loop().add_reader(self._r.fileno(), self._stall)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().remove_reader(self._r.fileno())
        self._r.close()
        self._w.close()

    def _stall(self) -> None:
        self._r.recv(1)
        time.sleep(self.seconds)

    async def after_sending(self) -> None:
        for _ in range(2):  # the command is sent, then written (writes wait for the iteration's end)
            await asyncio.sleep(0)
        self._w.send(b"x")


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_reply_waiting_in_the_socket_beats_a_deadline_the_busy_loop_reached_late(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Under load the loop reaches a deadline late; a reply that arrived meanwhile must still
    count, or a live Redis reads as down. The loop is kept busy in another socket's callback
    while the deadline (20 ms) passes and the reply (30 ms) arrives: uvloop then runs the due
    timer before it polls the sockets again."""
    server = _ThreadServer(delay=0.03)

    async def scenario() -> list[object]:
        client = RespClient("127.0.0.1", server.port)
        try:
            assert await client.call("PING", reply_within=1.0) == "PONG"  # connected
            replies: list[object] = []
            with _Stall(0.1) as stall:
                for _ in range(3):
                    pending = asyncio.ensure_future(client.call("PING", reply_within=0.02))
                    await stall.after_sending()
                    replies.append(await pending)
            return replies
        finally:
            await client.aclose()

    loop = new_loop()
    try:
        assert loop.run_until_complete(scenario()) == ["PONG"] * 3
    finally:
        loop.close()
        server.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_silent_server_times_out(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    server = _ThreadServer(silent=True)

    async def scenario() -> float:
        client = RespClient("127.0.0.1", server.port)
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await client.call("PING", reply_within=0.05)
            with pytest.raises(TimeoutError):
                await client.call_many([("PING",), ("PING",)], reply_within=0.05)
            return time.monotonic() - started
        finally:
            await client.aclose()

    loop = new_loop()
    try:
        assert loop.run_until_complete(scenario()) < 5.0  # bounded, not hung
    finally:
        loop.close()
        server.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_busy_redis_that_keeps_answering_is_not_reported_down(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Twelve commands sent at once, answered one every 30 ms: the last reply comes ~0.36 s after
    it was asked for, three deadlines (0.1 s) late, but replies kept arriving meanwhile, so every
    caller gets its answer. (Failing them answered 503 for a live Redis under a burst.)"""
    server = _ThreadServer(each=0.03)

    async def scenario() -> list[object]:
        client = RespClient("127.0.0.1", server.port)
        try:
            assert await client.call("PING", reply_within=1.0) == "PONG"  # connected
            calls = [client.call("PING", reply_within=0.1) for _ in range(10)]
            many = client.call_many([("PING",), ("PING",)], reply_within=0.1)
            return [*await asyncio.gather(*calls), await many]
        finally:
            await client.aclose()

    loop = new_loop()
    try:
        assert loop.run_until_complete(scenario()) == ["PONG"] * 10 + [["PONG", "PONG"]]
    finally:
        loop.close()
        server.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_loop_busy_through_the_whole_deadline_still_sees_redis_answering(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Ten commands sent at once, answered one every 30 ms, while the loop is stuck for 0.25 s
    (well past the 0.1 s deadline) right after sending them: when it wakes, the replies that came
    meanwhile are still unread. Whether Redis is alive is judged after they are read, so the
    commands still queued at Redis get their answers too."""
    server = _ThreadServer(each=0.03)

    async def scenario() -> list[object]:
        client = RespClient("127.0.0.1", server.port)
        try:
            assert await client.call("PING", reply_within=1.0) == "PONG"  # connected
            with _Stall(0.25) as stall:
                calls = asyncio.gather(*(client.call("PING", reply_within=0.1) for _ in range(10)))
                await stall.after_sending()
                return list(await calls)
        finally:
            await client.aclose()

    loop = new_loop()
    try:
        assert loop.run_until_complete(scenario()) == ["PONG"] * 10
    finally:
        loop.close()
        server.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_the_deadline_starts_when_the_command_is_written_not_when_it_is_asked_for(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The loop is stuck (0.4 s, other requests' handlers under a burst) after the command is
    asked for but before the write that carries it; Redis then answers 0.05 s after it gets it,
    well within the 0.2 s deadline. Counted from the ask, the deadline had passed before Redis
    saw the command, and a live Redis read as down (a 503 for the caller)."""
    server = _ThreadServer(delay=0.05)

    async def scenario() -> list[object]:
        client = RespClient("127.0.0.1", server.port)
        try:
            assert await client.call("PING", reply_within=1.0) == "PONG"  # connected
            one = asyncio.ensure_future(client.call("PING", reply_within=0.2))
            many = asyncio.ensure_future(client.call_many([("PING",), ("PING",)], reply_within=0.2))
            # Runs in the next iteration right after both have sent, before the write that
            # carries their commands (writes wait for the iteration after the sends).
            asyncio.get_running_loop().call_soon(time.sleep, 0.4)
            return [await one, await many]
        finally:
            await client.aclose()

    loop = new_loop()
    try:
        assert loop.run_until_complete(scenario()) == ["PONG", ["PONG", "PONG"]]
    finally:
        loop.close()
        server.close()
