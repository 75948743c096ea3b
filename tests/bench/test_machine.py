"""The run's machine figures: CPU steal from /proc/stat, and the disk commit probe."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.machine import CommitProbe, cpu_ticks, describe, probe_commits, steal_share


def _stat(tmp_path: Path, name: str, user: int, idle: int, steal: int) -> Path:
    path = tmp_path / name
    # user nice system idle iowait irq softirq steal guest guest_nice
    path.write_text(f"cpu  {user} 0 10 {idle} 5 0 1 {steal} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    return path


def test_steal_is_its_share_of_all_cpu_time_between_two_readings(tmp_path: Path) -> None:
    before = cpu_ticks(_stat(tmp_path, "a", user=100, idle=1000, steal=4))
    after = cpu_ticks(_stat(tmp_path, "b", user=150, idle=1140, steal=14))
    assert before == {"total": 100 + 10 + 1000 + 5 + 1 + 4, "steal": 4}  # guest time is inside user
    assert steal_share(before, after) == pytest.approx(10 / 200)
    assert steal_share(after, after) is None


def test_the_commit_probe_is_bounded_and_reports_milliseconds(tmp_path: Path) -> None:
    probe = probe_commits(tmp_path, seconds=5.0, max_ops=20, writers=2)
    assert 20 <= probe.ops <= 21  # the count bounds it before the time does (each writer checks it)
    ms = probe.fdatasync_ms
    assert ms["p50"] is not None
    assert ms["max"] is not None
    assert 0 < ms["p50"] <= ms["max"]
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    line = describe(probe, 0.012)
    assert f"over {probe.ops} commits" in line
    assert "stolen by the hypervisor 1.2%" in line


def test_a_slow_disk_is_flagged_and_an_empty_probe_says_so() -> None:
    slow = CommitProbe(10, {"p50": 0.3, "p90": 1.0, "p99": 40.0, "mean": 2.0, "max": 45.0})
    stalled = CommitProbe(10, {"p50": 0.2, "p90": 0.3, "p99": 1.0, "mean": 0.3, "max": 235.0})
    fast = CommitProbe(10, {"p50": 0.2, "p90": 0.3, "p99": 1.0, "mean": 0.3, "max": 2.0})
    empty = CommitProbe(0, {"p50": None, "p90": None, "p99": None, "mean": None, "max": None})
    assert slow.slow
    assert stalled.slow
    assert not fast.slow
    assert not empty.slow
    assert describe(empty) == "disk: no commit measured"
