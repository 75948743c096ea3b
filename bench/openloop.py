"""A paced open-loop client: requests leave on a fixed schedule whatever the server does.

    python -m bench.openloop --url URL --key KEY --rate 200 --count 2000 [--timeout 30]

Latency is measured from each request's *scheduled* send time to the end of its body, so a
server that falls behind is charged for the queueing it causes (no coordinated omission). The
count bounds the run, and so does a hard deadline of count/rate + timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import aiohttp

from bench.childio import raise_fd_limit, report_progress, report_result
from bench.stats import summarize_ms

OVERHEAD_HEADER = "x-runapi-overhead-ms"


class Outcome:
    __slots__ = ("error", "latency", "overhead_ms", "status")

    def __init__(self) -> None:
        self.latency: float | None = None
        self.status = 0
        self.error: str | None = None
        self.overhead_ms: float | None = None


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], due: float
) -> Outcome:
    out = Outcome()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            out.status = response.status
            header = response.headers.get(OVERHEAD_HEADER)
            if header is not None:
                with contextlib.suppress(ValueError):
                    out.overhead_ms = float(header)
        out.latency = time.perf_counter() - due
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.error = type(exc).__name__
    return out


async def run(
    url: str, key: str, body: bytes, rate: float, count: int, warmup: int, timeout_s: float
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), auto_decompress=False
    ) as session:
        # Warm the connection pool and the server's caches; not measured.
        for _ in range(warmup):
            await _one(session, url, body, headers, time.perf_counter())

        interval = 1.0 / rate
        start = time.perf_counter() + 0.05
        hard_deadline = start + count * interval + timeout_s
        tasks: list[asyncio.Task[Outcome]] = []
        for i in range(count):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() > hard_deadline:
                break
            tasks.append(asyncio.create_task(_one(session, url, body, headers, due)))
            if i % max(1, int(rate)) == 0:
                report_progress(sum(1 for t in tasks if t.done()))
        sent_for = time.perf_counter() - start
        pending: set[asyncio.Task[Outcome]] = set(tasks)
        while pending and time.perf_counter() < hard_deadline:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            report_progress(len(tasks) - len(pending))
        for task in pending:
            task.cancel()
        outcomes = [t.result() for t in tasks if t.done() and not t.cancelled()]

    ok = [o for o in outcomes if o.latency is not None and 200 <= o.status < 300]
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.error is not None:
            errors[o.error] = errors.get(o.error, 0) + 1
        elif not 200 <= o.status < 300:
            errors[f"http_{o.status}"] = errors.get(f"http_{o.status}", 0) + 1
    unfinished = len(pending) + (count - len(tasks))
    if unfinished:
        errors["unfinished"] = unfinished
    overheads = [o.overhead_ms / 1000.0 for o in ok if o.overhead_ms is not None]
    return {
        "rate": rate,
        "count": count,
        "ok": len(ok),
        "errors": errors,
        "achieved_rate": len(tasks) / sent_for if sent_for > 0 else None,
        "latency_ms": summarize_ms([o.latency for o in ok if o.latency is not None]),
        "overhead_header_ms": summarize_ms(overheads) if overheads else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    raise_fd_limit()
    json.loads(args.body)  # fail fast on a malformed body
    import uvloop

    result = uvloop.run(
        run(args.url, args.key, args.body.encode(), args.rate, args.count, args.warmup, args.timeout)
    )
    report_result(result)


if __name__ == "__main__":
    main()
