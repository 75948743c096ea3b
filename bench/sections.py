"""The measurements (a)-(e), each against one running target. Each returns plain JSON data."""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import flame, procstat, wrk
from bench.children import OnProgress, run_reporting_child, run_wrk
from bench.profiles import CHAT_BODY, IDEAL_STREAM_S, STREAM_BODY, Profile
from bench.servers import PYTHON
from bench.stats import cpu_us_per_request

MB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """One server under test, reached at `base_url`, whose process tree starts at `server_pid`."""

    name: str
    label: str
    base_url: str
    key: str
    server_pid: int
    upstream_pid: int | None  # the simulator behind it (None when the target is the simulator)
    workers: int
    database_url: str | None = None  # ours: where its ledger and tasks live

    @property
    def postgres_url(self) -> str | None:
        url = self.database_url
        return url if url is not None and url.startswith("postgresql") else None

    @property
    def chat_url(self) -> str:
        return self.base_url + "/v1/chat/completions"


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _wrk_once(
    target: Target, script: Path, duration_s: float, profile: Profile, on_progress: OnProgress
) -> wrk.WrkResult:
    args = wrk.command(target.chat_url, script, duration_s, profile.wrk_connections, profile.wrk_threads)
    return wrk.parse_output(run_wrk(args, duration_s, on_progress))


def throughput(target: Target, profile: Profile, work_dir: Path, on_progress: OnProgress) -> dict[str, Any]:
    """(a) saturation req/s with wrk, and (e) the server's CPU µs per request over the same run."""
    script = wrk.write_script(work_dir / f"wrk-{target.name}.lua", CHAT_BODY, target.key)
    _wrk_once(
        target, script, profile.wrk_warmup_s, profile, lambda *_: None
    )  # pools, caches, JIT-free warm-up
    server_tree = procstat.process_tree(target.server_pid)
    upstream_tree = procstat.process_tree(target.upstream_pid) if target.upstream_pid else []
    cpu_server_0 = procstat.cpu_seconds(server_tree)
    cpu_upstream_0 = procstat.cpu_seconds(upstream_tree)
    busy_0, mine_0, wall_0 = procstat.machine_busy_seconds(), _own_cpu_seconds(), time.monotonic()
    result = _wrk_once(target, script, profile.wrk_duration_s, profile, on_progress)
    cpu_server = procstat.cpu_seconds(server_tree) - cpu_server_0
    cpu_upstream = procstat.cpu_seconds(upstream_tree) - cpu_upstream_0
    wall = time.monotonic() - wall_0
    busy = procstat.machine_busy_seconds() - busy_0
    mine = _own_cpu_seconds() - mine_0  # this runner and wrk (its reaped child)
    ok_requests = max(0, result.requests - result.non2xx)
    data: dict[str, Any] = result.as_json()
    data.update(
        {
            "ok_requests": ok_requests,
            "ok_rps": ok_requests / result.duration_s if result.duration_s > 0 else 0.0,
            "cpu_s": cpu_server,
            "cpu_us_per_req": cpu_us_per_request(cpu_server, ok_requests),
            "upstream_cpu_us_per_req": cpu_us_per_request(cpu_upstream, ok_requests)
            if upstream_tree
            else None,
            "processes": len(server_tree),
            "upstream_cpu_s": cpu_upstream,
            "loadgen_cpu_s": mine,
            # Cores kept busy by processes outside this bench (other jobs on the machine): the
            # larger, the lower req/s; CPU µs per request is much less affected.
            "other_busy_cores": max(0.0, (busy - cpu_server - cpu_upstream - mine) / wall)
            if wall > 0
            else None,
            "connections": profile.wrk_connections,
            "threads": profile.wrk_threads,
        }
    )
    return data


def latency(target: Target, profile: Profile, rate: int, on_progress: OnProgress) -> dict[str, Any]:
    """(b) open-loop latency at a fixed request rate."""
    count = profile.latency_count(rate)
    args = [
        PYTHON,
        "-m",
        "bench.openloop",
        "--url",
        target.chat_url,
        "--key",
        target.key,
        "--body",
        CHAT_BODY,
        "--rate",
        str(rate),
        "--count",
        str(count),
        "--warmup",
        str(profile.latency_warmup),
        "--timeout",
        str(profile.latency_timeout_s),
    ]
    budget = profile.latency_warmup * 2 + count / rate + profile.latency_timeout_s * 2 + 30
    return run_reporting_child(args, count, budget, on_progress)


def streams(target: Target, profile: Profile, k: int, on_progress: OnProgress) -> dict[str, Any]:
    """(c) K concurrent paced streams: clean finishes, wall time, and the server's peak RSS."""
    args = [
        PYTHON,
        "-m",
        "bench.streams",
        "--url",
        target.chat_url,
        "--key",
        target.key,
        "--body",
        STREAM_BODY,
        "--k",
        str(k),
        "--timeout",
        str(profile.stream_timeout_s),
    ]
    rss_before = procstat.tree_rss_bytes(target.server_pid)
    with procstat.RssSampler(target.server_pid) as sampler:
        result = run_reporting_child(args, k, profile.stream_timeout_s + 60, on_progress)
    result.update(
        {
            "ideal_s": IDEAL_STREAM_S,
            "rss_before_mb": rss_before / MB,
            "peak_rss_mb": sampler.peak / MB,
        }
    )
    # Let the server finish whatever it still holds (timed-out streams) before the next K.
    time.sleep(1.0 if not result.get("timed_out") else 3.0)
    return result


def memory(target: Target, profile: Profile, work_dir: Path, on_step: OnProgress) -> dict[str, Any]:
    """(d) RSS after every `memory_step` requests up to `memory_total`, on a freshly started server."""
    script_path = work_dir / f"wrk-mem-{target.name}.lua"
    script = wrk.write_script(
        script_path, CHAT_BODY, target.key, limit=profile.memory_step, threads=profile.wrk_threads
    )
    points: list[dict[str, float]] = [
        {"requests": 0, "rss_mb": procstat.tree_rss_bytes(target.server_pid) / MB}
    ]
    sent = 0
    errors = 0
    stalled = False
    started = time.monotonic()
    steps = profile.memory_total // profile.memory_step
    for step in range(steps):
        # Bounded by time as well as count: at 100 req/s a step would still end within this.
        budget = max(30.0, profile.memory_step / 100)
        args = wrk.command(target.chat_url, script, budget, profile.wrk_connections, profile.wrk_threads)
        output = run_wrk(args, budget, lambda *_: None, stop_after_threads=profile.wrk_threads)
        result = wrk.parse_output(output)
        sent += result.requests
        errors += result.non2xx + result.socket_errors + result.timeouts
        time.sleep(0.5)  # let buffered writes flush before reading RSS
        points.append({"requests": sent, "rss_mb": procstat.tree_rss_bytes(target.server_pid) / MB})
        on_step(step + 1, steps)
        if result.requests < profile.memory_step // 10:
            stalled = True  # the server stopped answering: more steps would only wait out budgets
            break
    return {"points": points, "errors": errors, "stalled": stalled, "seconds": time.monotonic() - started}


def hot_path_profile(
    target: Target, profile: Profile, work_dir: Path, out_path: Path, on_progress: OnProgress
) -> dict[str, Any]:
    """py-spy on the target's process tree during an extra wrk run (kept apart from (a), which it
    would slow down). Writes collapsed stacks to `out_path`; returns the ranking."""
    seconds = max(6, round(profile.wrk_duration_s))
    script = wrk.write_script(work_dir / f"wrk-prof-{target.name}.lua", CHAT_BODY, target.key)
    args = wrk.command(target.chat_url, script, seconds, profile.wrk_connections, profile.wrk_threads)
    wrk_proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # past connection set-up
        spy = flame.start_recording(target.server_pid, seconds - 2, out_path)
        deadline = time.monotonic() + seconds + 30
        while spy.poll() is None and time.monotonic() < deadline:
            on_progress(min(seconds, seconds - (deadline - 30 - time.monotonic())), seconds)
            time.sleep(0.2)
        if spy.poll() is None:
            spy.kill()
        _, err = spy.communicate(timeout=10)
    finally:
        try:
            wrk_proc.wait(timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            wrk_proc.kill()
            wrk_proc.wait(timeout=5)
    if not out_path.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-1000:]}")
    with out_path.open() as lines:
        ranking = flame.rank(lines)
    ranking["file"] = str(out_path)
    return ranking
