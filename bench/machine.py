"""What the machine itself did during a run: how long a durable commit waits on the disk, and how
much CPU the hypervisor took away (steal).

On one machine of this kind ours-pg's p99 at 200 req/s was 5.3 ms; on another it was 38 to 930
ms over four runs, with PostgreSQL's sessions seen waiting 60-190 ms on the WAL's fdatasync
(`IO:WALSync` in pg_stat_activity), and a probe of four writers committing 16 KB each saw one
fdatasync take 235 ms. PostgreSQL commits with one fdatasync per batch (synchronous_commit), and
every request of the batch waits it out. Such a run's latency percentiles say more about the disk
than about the gateway, so the run records the disk and the CPU steal beside its results. The
probe runs before and after the run, so it reads the disk's usual speed; a stall that only the
run's own load brings on escapes it (pg_stat_activity's wait events, sampled during a run, are
what showed the WALSync waits above).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stats import summarize_ms

_BLOCK = b"\0" * 16384  # two WAL pages: a small batch's commit
_FILE_SPAN = 64  # blocks: each writer rewrites a 1 MB file, as a WAL segment is reused
#: A commit p99 above this (ms) is worth a warning. On the slower machine above, a lone 8 KB
#: commit took 0.23 ms at p50 and 1.1 ms at p99, four writers' 16 KB commits 0.49 and 4.5 ms.
SLOW_COMMIT_MS = 5.0
#: ... and so is a single commit stalled this long (ms), tail or not.
STALL_MS = 50.0


@dataclass(frozen=True)
class CommitProbe:
    ops: int
    fdatasync_ms: dict[str, float | None]  # p50, p90, p99, mean, max

    @property
    def slow(self) -> bool:
        """Whether commit waits are long enough to show in the gateway's latency: a long tail, or
        one stall as long as a whole request's budget many times over."""
        p99, worst = self.fdatasync_ms["p99"], self.fdatasync_ms["max"]
        return (p99 is not None and p99 > SLOW_COMMIT_MS) or (worst is not None and worst > STALL_MS)

    def as_json(self) -> dict[str, object]:
        return {"ops": self.ops, "fdatasync_ms": self.fdatasync_ms}


def probe_commits(
    directory: Path, seconds: float = 2.0, max_ops: int = 4000, writers: int = 2
) -> CommitProbe:
    """`writers` threads each write a 16 KB block to their own file and fdatasync it, back to back,
    for `seconds` (at most `max_ops` commits in all): what a database's commit waits for on this
    disk while another commit is under way, as the gateway's batches are beside PostgreSQL's own
    WAL writer (in one 10-12 s sample each on the slower machine, one writer's worst wait was
    25 ms, four writers' 235 ms)."""
    waits: list[float] = []  # list.append is atomic: the threads share it
    deadline = time.monotonic() + seconds

    def commit_loop(path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = 0
            while len(waits) < max_ops and time.monotonic() < deadline:
                os.pwrite(fd, _BLOCK, (block % _FILE_SPAN) * len(_BLOCK))
                block += 1
                started = time.perf_counter()
                os.fdatasync(fd)
                waits.append(time.perf_counter() - started)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)

    threads = [
        threading.Thread(target=commit_loop, args=(directory / f"commit-probe-{n}",), daemon=True)
        for n in range(writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)  # an fdatasync that never returns must not hang the bench
    return CommitProbe(len(waits), summarize_ms(list(waits)))


def cpu_ticks(stat: Path = Path("/proc/stat")) -> dict[str, int]:
    """The whole machine's CPU time so far (clock ticks): `total` and `steal`."""
    fields = stat.read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    # counted in user and nice.
    return {"total": sum(values[:8]), "steal": values[7] if len(values) > 7 else 0}


def steal_share(before: dict[str, int], after: dict[str, int]) -> float | None:
    """The share of CPU time the hypervisor gave to others between two readings (0 to 1)."""
    total = after["total"] - before["total"]
    if total <= 0:
        return None
    return (after["steal"] - before["steal"]) / total


def describe(commits: CommitProbe, steal: float | None = None) -> str:
    """One line for the screen."""
    ms = commits.fdatasync_ms
    if ms["p50"] is None or ms["p99"] is None or ms["max"] is None:
        line = "disk: no commit measured"
    else:
        line = (
            f"disk: 16 KB commit (fdatasync, 2 writers) p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms, "
            f"max {ms['max']:.1f} ms over {commits.ops} commits"
        )
    if steal is not None:
        line += f"; CPU stolen by the hypervisor {100 * steal:.1f}%"
    return line


__all__ = [
    "SLOW_COMMIT_MS",
    "STALL_MS",
    "CommitProbe",
    "cpu_ticks",
    "describe",
    "probe_commits",
    "steal_share",
]
