"""CPU time and memory of a server's whole process tree, read from /proc (Linux only).

Multi-worker servers (ours with --workers, LiteLLM's uvicorn workers) are a parent plus children,
so every figure sums the root process and all its live descendants.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _parents() -> dict[int, int]:
    table: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            table[int(entry.name)] = int(fields[1])  # field 4 of stat: ppid
    return table


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 10_000:  # bounded: a pid table never holds that many of ours
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (clock-tick resolution, 10 ms)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    """Resident set size summed over these processes (shared pages of forked workers count twice)."""
    total = 0
    for pid in pids:
        try:
            resident = int((_PROC / str(pid) / "statm").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        total += resident * _PAGE
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def tree_cpu_seconds(root: int) -> float:
    return cpu_seconds(process_tree(root))


def tree_rss_bytes(root: int) -> int:
    return rss_bytes(process_tree(root))


class RssSampler:
    """Samples a process tree's RSS on a background thread; `peak` is the highest sample."""

    def __init__(self, root: int, interval_s: float = 0.05) -> None:
        self._root = root
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.peak = 0
        self.samples = 0

    def _loop(self) -> None:
        pids = process_tree(self._root)
        rounds = 0
        while not self._stop.is_set():
            # The pid table scan is the costly part; workers do not change during a section.
            if rounds % 40 == 0:
                pids = process_tree(self._root)
            self.peak = max(self.peak, rss_bytes(pids))
            self.samples += 1
            rounds += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.peak = tree_rss_bytes(self._root)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, tree_rss_bytes(self._root))
