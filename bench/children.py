"""Run a load generator as a child process, bounded in time, feeding the on-screen progress bar."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.servers import REPO

# (completed, total or None) → the progress display
OnProgress = Callable[[float, float | None], None]


class ChildFailed(RuntimeError):
    pass


def run_reporting_child(
    args: list[str], total: int, timeout_s: float, on_progress: OnProgress
) -> dict[str, Any]:
    """Run a `bench.childio` client; return its result. Progress lines move the bar."""
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    result: dict[str, Any] | None = None
    try:
        fd = proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailed(
                    f"{args[2] if len(args) > 2 else args[0]} did not finish in {timeout_s:.0f}s"
                )
            ready, _, _ = select.select([fd], [], [], min(0.5, remaining))
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("progress "):
                on_progress(float(line.split()[1]), float(total))
            elif line.startswith("result "):
                result = json.loads(line[len("result ") :])
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    if result is None:
        raise ChildFailed(f"no result (exit {proc.returncode}):\n{proc.stderr.read()[-3000:]}")
    return result


def run_wrk(
    args: list[str], duration_s: float, on_progress: OnProgress, stop_after_threads: int | None = None
) -> str:
    """Run wrk; with `stop_after_threads`, end it (SIGINT, so it still prints its summary) once
    that many threads have reported WRKDONE. Bounded by duration + 20 s whatever happens."""
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert proc.stdout is not None
    start = time.monotonic()
    hard_deadline = start + duration_s + 20
    interrupted = False
    done_threads = 0
    out: list[str] = []
    try:
        fd = proc.stdout.fileno()
        while True:
            now = time.monotonic()
            if now > hard_deadline:
                raise ChildFailed("wrk did not finish in time")
            if not interrupted and now > start + duration_s + 5:
                proc.send_signal(signal.SIGINT)
                interrupted = True
            if stop_after_threads is None:
                on_progress(min(now - start, duration_s), duration_s)
            else:
                on_progress(done_threads, float(stop_after_threads))
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("WRKDONE"):
                done_threads += 1
                if stop_after_threads is not None and done_threads >= stop_after_threads and not interrupted:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
        proc.wait(timeout=max(1.0, hard_deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    return "".join(out)
