"""`--profile`: sample a target with py-spy while wrk loads it, and rank where the time goes.

py-spy writes collapsed stacks (`frame;frame;frame count` per line; speedscope and
flamegraph.pl open the file). Sampling only threads that hold the GIL (`--gil`) leaves out idle
waits (epoll, a database thread blocked on its queue), so the shares are of Python work done.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Entry points and event-loop plumbing sit under every stack of a thread and say nothing about
# where the time goes; they are left out of the inclusive ranking.
_WRAPPER = re.compile(
    r"typer/|click/|threading\.py|multiprocessing/|runapi/cli/|aiohttp/web\.py|<module>|runpy|"
    r"asyncio/(base_events|events|runners)\.py|process \d+|thread \("
)


def py_spy_path() -> str | None:
    """py-spy from this venv (`pip install -e '.[bench]'`), else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record_command(pid: int, seconds: int, out: Path, rate: int = 200) -> list[str]:
    return [
        py_spy_path() or "py-spy",
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--gil",
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
    ]


def start_recording(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        record_command(pid, seconds, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def rank(lines: Iterable[str], top: int = 25, focus: str = "runapi/") -> dict[str, Any]:
    """Own time (the frame on top of the stack) and inclusive time per frame, as % of samples;
    `focused` ranks only frames of our own code (`focus` in the file path)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for raw in lines:
        line = raw.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if total == 0:
        return {"samples": 0, "own": [], "inclusive": [], "focused": []}

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "pct": round(100.0 * n / total, 1)} for f, n in counter.most_common(top)]

    informative = Counter({f: n for f, n in inclusive.items() if n < total and not _WRAPPER.search(f)})
    focused = Counter({f: n for f, n in informative.items() if focus in f})
    return {"samples": total, "own": share(own), "inclusive": share(informative), "focused": share(focused)}
