"""A lean Redis client for the limiter's hot path: one multiplexed RESP2 connection.

redis-py 8 runs ~340 Python calls per command (connection pool, retry wrapper, observability
hooks, three timeouts); the limiter sends two commands per request, and in the PostgreSQL + Redis
gateway redis-py was about a third of all CPU (`bench/README.md`). Redis answers the commands of a
connection in order, so this client writes each command the moment it is called and matches
replies to callers first-in first-out: concurrent requests pipeline on one connection for free.

It speaks what the limiter needs: commands of strings, replies of simple and bulk strings (decoded
as UTF-8), integers, arrays and errors; AUTH and SELECT from the URL when it connects; `redis://`,
`rediss://` (TLS) and `unix://`. No retries: a command whose connection broke may or may not have
run, and the limiter's scripts debit, so the caller decides (its failure mode).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_CRLF = b"\r\n"
INCOMPLETE: Any = object()


class RespError(Exception):
    """An error reply. `kind` is its first word (`NOSCRIPT`, `ERR`, `WRONGPASS`, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = message.split(" ", 1)[0]


class RespProtocolError(ConnectionError):
    """The server sent something that is not RESP2; the connection is dropped."""


def encode_command(args: tuple[str | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def parse_reply(buf: bytearray | bytes, pos: int) -> tuple[Any, int]:
    """One reply starting at `pos`: (value, position after it), or (INCOMPLETE, pos) when the
    buffer does not hold all of it yet."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        return INCOMPLETE, pos
    kind, line, after = buf[pos], buf[pos + 1 : end], end + 2
    if kind == 0x24:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, after
        if len(buf) < after + size + 2:
            return INCOMPLETE, pos
        return bytes(buf[after : after + size]).decode(), after + size + 2
    if kind == 0x2A:  # * array
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse_reply(buf, after)
            if item is INCOMPLETE:
                return INCOMPLETE, pos
            items.append(item)
        return items, after
    if kind == 0x3A:  # : integer
        return int(line), after
    if kind == 0x2B:  # + simple string
        return bytes(line).decode(), after
    if kind == 0x2D:  # - error
        return RespError(bytes(line).decode()), after
    raise RespProtocolError(f"unexpected reply type byte {kind!r}")


# A reply overdue while the connection keeps delivering others waits at most this many more
# windows: Redis is alive and this command is queued behind a burst (see `_overdue`).
_BUSY_WINDOWS = 8


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.replies_read = 0  # so far on this connection: progress a deadline can check
        self._buf = bytearray()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []  # commands sent in this loop iteration, written together
        self._unarmed: list[_Deadline] = []  # deadlines of those commands: they start at the write

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, payload: bytes, reply: asyncio.Future[Any]) -> None:
        if self.lost is not None or self.transport is None:
            reply.set_exception(ConnectionError(f"Redis connection lost: {self.lost}"))
            return
        self._waiting.append(reply)
        self._out.append(payload)
        if len(self._out) == 1:
            # Every command sent in this iteration of the loop (admissions and releases of many
            # requests under load) leaves in one write: one system call, not one each.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.lost is None and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        unarmed, self._unarmed = self._unarmed, []
        for deadline in unarmed:
            deadline.arm()

    def arm_when_written(self, deadline: _Deadline) -> None:
        """Start `deadline` when the commands sent just before it leave (this iteration's write).
        A loop kept busy past the window before it even wrote them (a burst of thousands of
        requests runs its handlers in one iteration) is no sign of a slow Redis."""
        if self._out:
            self._unarmed.append(deadline)
        else:
            deadline.arm()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                value, pos_after = parse_reply(buf, pos)
                if value is INCOMPLETE:
                    break
                pos = pos_after
                self.replies_read += 1
                reply = self._waiting.popleft()
                if reply.done():
                    continue  # its caller gave up (timeout): the reply is read and dropped
                if isinstance(value, RespError):
                    reply.set_exception(value)
                else:
                    reply.set_result(value)
        except (RespProtocolError, ValueError, IndexError) as exc:
            # Garbage, or a reply nobody asked for: this connection cannot be trusted any more.
            self._fail(RespProtocolError(f"Redis protocol error: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("Redis closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        while self._waiting:
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(ConnectionError(str(exc)))


class _Deadline:
    """When the replies to commands just sent are overdue, and what then.

    The window opens when the commands are written, not when they are asked for: under a burst
    the loop runs thousands of handlers in one iteration before the write that carries their
    commands, and a window opened at the first of them had closed before Redis saw any (448 of
    5,000 streams answered 503 in one bench run on a slower machine, after the fix below).

    At the deadline nothing is decided before one more poll for I/O: a busy event loop reaches a
    deadline late, and libuv (uvloop) runs due timers before it reads the sockets, so a reply
    already waiting in the socket would lose to its own deadline, and the caller would report
    Redis as down (and leak the slot the script already took).

    After that poll, a Redis that is plainly alive gets another window, up to `_BUSY_WINDOWS`:
    when other replies arrived on the connection since the commands were sent, they are queued
    behind a burst (thousands of admissions at once pipeline on the one connection). Failing them
    answered 503 for a live Redis (1,457 of 5,000 streams in one bench run). Judged before the
    poll, a loop kept busy through the whole window had not yet read the replies waiting for it."""

    __slots__ = ("_handle", "canceled", "conn", "loop", "read_before", "replies", "window", "windows_left")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        replies: Sequence[asyncio.Future[Any]],
        conn: _Connection,
        window: float,
    ) -> None:
        self.loop, self.replies, self.conn, self.window = loop, replies, conn, window
        self.read_before = conn.replies_read
        self.windows_left = _BUSY_WINDOWS
        self.canceled = False
        self._handle: asyncio.TimerHandle | None = None
        conn.arm_when_written(self)

    def arm(self) -> None:
        """The commands were written: Redis has `window` seconds from now."""
        if not self.canceled:
            self.read_before = self.conn.replies_read
            self._handle = self.loop.call_later(self.window, self._overdue)

    def cancel(self) -> None:
        self.canceled = True
        if self._handle is not None:
            self._handle.cancel()

    def _overdue(self) -> None:
        if any(not reply.done() for reply in self.replies):
            self._handle = self.loop.call_later(0.001, self._expire)

    def _expire(self) -> None:
        if all(reply.done() for reply in self.replies):
            return
        conn = self.conn
        if conn.replies_read > self.read_before and self.windows_left > 0 and conn.lost is None:
            self.read_before = conn.replies_read
            self.windows_left -= 1
            self._handle = self.loop.call_later(self.window, self._overdue)
            return
        waited = (_BUSY_WINDOWS - self.windows_left + 1) * self.window
        for reply in self.replies:
            if not reply.done():
                reply.set_exception(TimeoutError(f"no reply from Redis in {waited:.2f}s"))


async def _gather_replies(replies: Sequence[asyncio.Future[Any]]) -> list[Any]:
    results: list[Any] = []
    error: BaseException | None = None
    for reply in replies:  # all of them, so no failed reply is left unretrieved
        try:
            results.append(await reply)
        except (RespError, ConnectionError, TimeoutError) as exc:
            error = error or exc
            results.append(exc)
    if error is not None:
        raise error
    return results


class RespClient:
    """`await client.call("EVALSHA", sha, "2", key1, key2, ...)` → the decoded reply."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        unix_path: str | None = None,
        connect_timeout: float = 1.0,
    ) -> None:
        self._host, self._port, self._unix_path = host, port, unix_path
        self._db, self._username, self._password = db, username, password
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    @classmethod
    def from_url(cls, url: str, *, connect_timeout: float = 1.0) -> RespClient:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL: {url!r}")
        query = parse_qs(parts.query)
        # The database: `?db=N`, else (not for unix://, whose path is the socket) the URL's path.
        path_db = "" if parts.scheme == "unix" else parts.path.lstrip("/")
        common: dict[str, Any] = {
            "db": int(query.get("db", [""])[0] or path_db or "0"),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "connect_timeout": connect_timeout,
        }
        if parts.scheme == "unix":
            return cls(unix_path=parts.path, **common)
        tls = ssl.create_default_context() if parts.scheme == "rediss" else None
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379, tls=tls, **common)

    async def call(self, *args: str | bytes, reply_within: float | None = None) -> Any:
        """Send one command; its reply, or `TimeoutError` when none came within `reply_within`
        seconds (see `_overdue`; not `asyncio.timeout`, which would also cancel a reply already
        waiting in the socket)."""
        conn = self._conn
        if conn is None or conn.lost is not None:
            conn = await self._connect()
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        conn.send(encode_command(args), reply)
        if reply_within is None:
            return await reply
        deadline = _Deadline(loop, (reply,), conn, reply_within)
        try:
            return await reply
        finally:
            deadline.cancel()

    async def call_many(
        self, commands: list[tuple[str | bytes, ...]], reply_within: float | None = None
    ) -> list[Any]:
        """Several commands written at once; every reply is read, the first error is raised."""
        conn = self._conn
        if conn is None or conn.lost is not None:
            conn = await self._connect()
        loop = asyncio.get_running_loop()
        replies = [loop.create_future() for _ in commands]
        for args, reply in zip(commands, replies, strict=True):
            conn.send(encode_command(args), reply)
        deadline = None
        if reply_within is not None:
            deadline = _Deadline(loop, replies, conn, reply_within)
        try:
            return await _gather_replies(replies)
        finally:
            if deadline is not None:
                deadline.cancel()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    async def _connect(self) -> _Connection:
        # One connect at a time: callers that arrive meanwhile wait for the same one.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        conn = await asyncio.shield(self._connecting)
        self._conn = conn
        return conn

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            if self._unix_path is not None:
                _, conn = await loop.create_unix_connection(_Connection, self._unix_path)
            else:
                _, conn = await loop.create_connection(_Connection, self._host, self._port, ssl=self._tls)
            setup: list[tuple[str | bytes, ...]] = []
            if self._password is not None:
                auth: tuple[str, ...] = ("AUTH", self._password)
                if self._username is not None:
                    auth = ("AUTH", self._username, self._password)
                setup.append(auth)
            if self._db:
                setup.append(("SELECT", str(self._db)))
            replies = [loop.create_future() for _ in setup]
            for args, reply in zip(setup, replies, strict=True):
                conn.send(encode_command(args), reply)
            try:
                for reply in replies:
                    await reply
            except BaseException:
                if conn.transport is not None:
                    conn.transport.close()
                raise
        return conn


__all__ = ["INCOMPLETE", "RespClient", "RespError", "RespProtocolError", "encode_command", "parse_reply"]
