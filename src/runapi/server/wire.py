"""HTTP/1.1 response heads, written once per answer by the lean server."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_date_second = 0
_date_text = ""

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def http_date() -> str:
    """The Date header (RFC 9110 §6.6.1), formatted once per second, not per answer."""
    global _date_second, _date_text
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_text = now, formatdate(now, usegmt=True)
    return _date_text


def response_head(
    status: int,
    headers: dict[str, str],
    *,
    content_type: str | None,
    content_length: int | None,
    keep_alive: bool,
    chunked: bool,
) -> bytes:
    """Status line and headers. Values come from our own code or from request headers the parser
    already checked (no CR or LF can reach them)."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\nDate: {http_date()}\r\nServer: runapi\r\n"
    ]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}\r\n")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}\r\n")
    elif chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


__all__ = ["CONTINUE", "LAST_CHUNK", "chunk", "http_date", "response_head"]
