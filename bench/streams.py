"""K concurrent streaming requests, each on its own connection, read as raw bytes.

    python -m bench.streams --url http://HOST:PORT/v1/chat/completions --key KEY --k 1000 --timeout 60

A lean client on purpose (asyncio streams, no HTTP library): with thousands of streams the
client must not be what stalls. For every stream it records the time to the first byte, the
largest gap between two reads, and whether `data: [DONE]` arrived. All streams start at once;
the whole run is bounded by --timeout, and streams still open then count as unfinished.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.childio import raise_fd_limit, report_progress, report_result
from bench.stats import summarize_ms

STALL_SECONDS = 1.0
_DONE = b"data: [DONE]"


@dataclass(slots=True)
class StreamOutcome:
    started: float
    first_byte: float | None = None
    finished: float | None = None
    max_gap: float = 0.0
    status: int = 0
    done: bool = False
    error: str | None = None
    reads: int = 0
    code: str | None = None  # the error code of a non-2xx answer, when its first read holds it


def build_request(url: str, key: str, body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return host, port, head.encode() + body


_CODE = re.compile(rb'"code"\s*:\s*"([A-Za-z0-9_.-]{1,64})"')
_TYPE = re.compile(rb'"type"\s*:\s*"([A-Za-z0-9_.-]{1,64})"')


def _code_of(first: bytes) -> str | None:
    """`server_is_overloaded`, `upstream_unavailable`, ...: which failure a 4xx/5xx was, so that a
    report says more than its status (OpenAI-shaped bodies carry `code`; others a `type`)."""
    found = _CODE.search(first) or _TYPE.search(first)
    return found.group(1).decode() if found else None


def _status_of(first: bytes) -> int:
    # b"HTTP/1.1 200 OK\r\n..."
    try:
        return int(first.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


async def _one(host: str, port: int, request: bytes, out: StreamOutcome) -> None:
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        last = 0.0
        tail = b""
        while True:
            data = await reader.read(65536)
            now = time.perf_counter()
            if not data:
                break
            out.reads += 1
            if out.first_byte is None:
                out.first_byte = now
                out.status = _status_of(data)
                if not 200 <= out.status < 300:
                    out.code = _code_of(data)
            else:
                out.max_gap = max(out.max_gap, now - last)
            last = now
            window = tail + data
            if _DONE in window:
                out.done = True
                out.finished = now
                break
            tail = window[-len(_DONE) :]
    except (OSError, asyncio.IncompleteReadError) as exc:
        out.error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()


async def run(url: str, key: str, body: bytes, k: int, timeout_s: float) -> dict[str, object]:
    host, port, request = build_request(url, key, body)
    start = time.perf_counter()
    outcomes = [StreamOutcome(started=start) for _ in range(k)]
    tasks = [asyncio.create_task(_one(host, port, request, out)) for out in outcomes]
    pending: set[asyncio.Task[None]] = set(tasks)
    deadline = start + timeout_s
    while pending and time.perf_counter() < deadline:
        _, pending = await asyncio.wait(pending, timeout=min(0.25, max(0.0, deadline - time.perf_counter())))
        report_progress(k - len(pending))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    finished_times = [o.finished for o in outcomes if o.finished is not None]
    completed = [o for o in outcomes if o.done and 200 <= o.status < 300]
    # A stall is a silence of over a second between two reads of the stream once it started.
    clean = [o for o in completed if o.max_gap <= STALL_SECONDS]
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.error is not None:
            errors[o.error] = errors.get(o.error, 0) + 1
        elif o.status and not 200 <= o.status < 300:
            name = f"http_{o.status}" + (f":{o.code}" if o.code else "")
            errors[name] = errors.get(name, 0) + 1
    return {
        "k": k,
        "completed": len(completed),
        "clean": len(clean),
        "stalled": len(completed) - len(clean),
        "unfinished": sum(1 for o in outcomes if not o.done),
        "errors": errors,
        "wall_s": (max(finished_times) - start) if len(finished_times) == k else timeout_s,
        "last_finished_s": (max(finished_times) - start) if finished_times else None,
        "ttfb_ms": summarize_ms([o.first_byte - o.started for o in outcomes if o.first_byte is not None]),
        "max_gap_ms": summarize_ms([o.max_gap for o in completed]),
        "timed_out": bool(pending),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streams")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--body", required=True, help="JSON request body (with stream: true)")
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    raise_fd_limit()
    import uvloop

    report_result(uvloop.run(run(args.url, args.key, args.body.encode(), args.k, args.timeout)))


if __name__ == "__main__":
    main()
