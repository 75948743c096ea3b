"""Server-Sent Events framing: bytes in, the `data` of each complete event out (protocols.md §0.1)."""

from __future__ import annotations


class SSEDecoder:
    """Incremental; events may be split across network reads at any byte.

    Only `data:` lines matter for Chat Completions streams: comments (keep-alives), `event:`, `id:`
    and `retry:` lines are skipped. Several `data:` lines in one event are joined with newlines.
    """

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if self._data or b"\r" in buf:
            return self._feed_lines(buf)
        # Fast path for what every Chat Completions server sends: `data: {...}\n\n` blocks.
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start:end]
            start = end + 2
            if block.startswith(b"data: ") and b"\n" not in block:
                out.append(block[6:])
            else:
                for line in block.split(b"\n"):
                    self._line(line, out)
                self._line(b"", out)
        self._buf = buf[start:]
        return out

    def _feed_lines(self, buf: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            self._line(buf[start:end], out)
            start = end + 1
        self._buf = buf[start:]
        return out

    def finish(self) -> list[bytes]:
        """At EOF: an event the server did not end with a blank line still counts."""
        out: list[bytes] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[bytes]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                out.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                self._data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
