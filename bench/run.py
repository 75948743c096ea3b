"""`make bench` / `python -m bench.run [--quick] [--only a,c] [--targets …] [--skip-litellm]`.

Starts every server itself (simulator, pass-through, ours on SQLite, ours on PostgreSQL + Redis
with workers = cores, LiteLLM), runs sections (a)-(e) against each in turn, and writes
bench/results/<timestamp>-<sha>.json, latest.json and latest.png. Loopback only; every loop is
bounded by count and by time; a target that cannot start is reported, never fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bench import backends, dbwaits, flame, litellm_proxy, machine, plot, report, sections, wrk
from bench.childio import raise_fd_limit
from bench.children import OnProgress
from bench.ours import OursSetup, start_ours
from bench.profiles import CHAT_BODY, FULL, IDEAL_STREAM_S, QUICK, STREAM_BODY, Profile
from bench.sections import Target
from bench.servers import REPO, Server, start_passthrough, start_simulator

RESULTS = REPO / "bench" / "results"
ALL_SECTIONS = "abcde"
PROFILED = ("ours-sqlite", "ours-pg")
ALL_TARGETS = ("direct", "passthrough", "ours-sqlite", "ours-pg", "litellm")
T = TypeVar("T")


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_sha() -> str:
    sha = _git("rev-parse", "--short", "HEAD") or "nogit"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return sha + ("-dirty" if dirty else "")


def probe(target: Target) -> str | None:
    """One non-streaming request; None if it answered a chat completion, else what went wrong."""
    request = urllib.request.Request(
        target.chat_url,
        data=CHAT_BODY.encode(),
        headers={"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            if response.status == 200 and b'"choices"' in body:
                return None
            return f"HTTP {response.status}: {body[:500]!r}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:500]!r}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


class Runner:
    def __init__(
        self, console: Console, progress: Progress, profile: Profile, args: argparse.Namespace, work_dir: Path
    ) -> None:
        self.console = console
        self.progress = progress
        self.profile = profile
        self.sections = set(args.only)
        self.hot_path = bool(args.profile) and flame.py_spy_path() is not None
        self.targets = [t for t in args.targets if not (t == "litellm" and args.skip_litellm)]
        self.work_dir = work_dir
        self.log_dir = work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.cores = os.cpu_count() or 2
        self.servers: list[Server] = []
        self.pg_url: str | None = None
        self.results: dict[str, Any] = {
            "meta": {},
            "targets": {},
            "throughput": {},
            "latency": {},
            "streams": {},
            "memory": {},
            "profiles": {},
            "errors": [],
        }
        self.overall = progress.add_task("[bold]bench", total=self._planned_steps())
        self.step_task = progress.add_task("", total=None, visible=False)

    # ---- plumbing ----------------------------------------------------------------------------

    def _steps_per_target(self) -> int:
        return (
            int("a" in self.sections or "e" in self.sections)
            + (len(self.profile.latency_rates) if "b" in self.sections else 0)
            + (len(self.profile.stream_ks) if "c" in self.sections else 0)
        )

    def _planned_steps(self) -> int:
        profiled = sum(1 for t in self.targets if t in PROFILED) if self.hot_path else 0
        return self._steps_per_target() * len(self.targets) + profiled + (2 if "d" in self.sections else 0)

    def step(self, description: str, work: Callable[[OnProgress], T], target: str, section: str) -> T | None:
        """Run one bounded piece of work under a progress bar; an exception is recorded, not raised."""
        self.progress.reset(
            self.step_task, description=f"  {description}", total=None, completed=0, visible=True
        )

        def on_progress(done: float, total: float | None) -> None:
            self.progress.update(self.step_task, completed=done, total=total)

        try:
            return work(on_progress)
        except Exception as exc:  # one failing target or section must not end the run
            detail = f"{type(exc).__name__}: {exc}"
            self.results["errors"].append({"target": target, "section": section, "error": detail})
            self.console.print(f"[red]✗ {target} {section}:[/red] {detail[:600]}")
            self.console.log(traceback.format_exc(limit=3))
            return None
        finally:
            self.progress.update(self.step_task, visible=False)
            self.progress.advance(self.overall)

    def note_target(self, name: str, label: str, status: str, note: str = "", **extra: Any) -> None:
        self.results["targets"][name] = {"label": label, "status": status, "note": note, **extra}
        colour = {"ok": "green", "missing": "yellow", "skipped": "yellow"}.get(status, "red")
        self.console.print(f"[{colour}]● {label}: {status}[/{colour}] {note}")

    def stop(self, server: Server) -> None:
        crashed = server.popen.poll()
        server.stop()
        if crashed is not None:
            self.console.print(
                f"[red]{server.name} had exited (code {crashed}) before the end; log: {server.log_path}"
            )
        if server in self.servers:
            self.servers.remove(server)

    def cleanup(self) -> None:
        for server in list(reversed(self.servers)):
            server.stop(grace_s=5)
        self.servers.clear()
        if self.pg_url:
            try:
                backends.drop_database(self.pg_url)
            except Exception as exc:
                self.console.print(f"[yellow]could not drop {self.pg_url}: {exc}")
            self.pg_url = None

    # ---- measuring one target ----------------------------------------------------------------

    def measure(self, target: Target) -> None:
        p = self.profile
        problem = probe(target)
        if problem:
            self.note_target(
                target.name, self.results["targets"][target.name]["label"], "failed", f"probe: {problem}"
            )
            self.results["errors"].append({"target": target.name, "section": "probe", "error": problem})
            self.progress.advance(self.overall, self._steps_per_target())
            return
        if "a" in self.sections or "e" in self.sections:
            data = self.step(
                f"{target.name}: (a) wrk {p.wrk_duration_s:.0f}s, {p.wrk_connections} connections",
                lambda cb: sections.throughput(target, p, self.work_dir, cb),
                target.name,
                "throughput",
            )
            if data is not None:
                self.results["throughput"][target.name] = data
                self.console.print(
                    f"  {target.name}: {data['ok_rps']:,.0f} req/s, "
                    f"{(data['cpu_us_per_req'] or 0):,.0f} µs CPU/req "
                    f"(upstream {(data['upstream_cpu_us_per_req'] or 0):,.0f} µs/req; "
                    f"other jobs busy {(data['other_busy_cores'] or 0):.2f} cores)"
                    + (
                        f" [red]{data['non2xx']} non-2xx, {data['socket_errors']} socket errors"
                        if data["non2xx"] or data["socket_errors"]
                        else ""
                    )
                )
        if self.hot_path and target.name in PROFILED:
            self._profile(target)
        if "b" in self.sections:
            for rate in p.latency_rates:
                # On PostgreSQL, what its sessions wait on meanwhile (a slow disk shows there).
                pg = target.postgres_url
                sampler = dbwaits.WaitSampler(pg) if pg is not None else None
                with sampler or contextlib.nullcontext():
                    lat = self.step(
                        f"{target.name}: (b) open loop {rate} req/s x {p.latency_count(rate)}",
                        functools.partial(sections.latency, target, p, rate),
                        target.name,
                        f"latency@{rate}",
                    )
                if lat is not None:
                    self.results["latency"].setdefault(target.name, {})[str(rate)] = lat
                    ms = lat["latency_ms"]
                    self.console.print(
                        f"  {target.name} @{rate}/s: p50 {ms['p50'] or 0:.2f} p90 {ms['p90'] or 0:.2f} "
                        f"p99 {ms['p99'] or 0:.2f} ms"
                        + (f" [red]errors {lat['errors']}" if lat["errors"] else "")
                    )
                    if sampler is not None:
                        lat["db_waits"] = sampler.summary()
                        self.console.print("    " + dbwaits.describe(lat["db_waits"]))
        if "c" in self.sections:
            for k in p.stream_ks:
                res = self.step(
                    f"{target.name}: (c) {k} concurrent streams",
                    functools.partial(sections.streams, target, p, k),
                    target.name,
                    f"streams@{k}",
                )
                if res is not None:
                    self.results["streams"].setdefault(target.name, {})[str(k)] = res
                    self.console.print(
                        f"  {target.name} K={k}: {res['clean']} clean, {res['stalled']} stalled, "
                        f"{res['unfinished']} unfinished, wall {res['wall_s']:.2f}s, "
                        f"peak RSS {res['peak_rss_mb']:.0f} MB"
                        + (f" [red]errors {res['errors']}" if res["errors"] else "")
                    )

    def _profile(self, target: Target) -> None:
        out = self.work_dir / f"profile-{target.name}.txt"  # about 1 MB: kept out of the repo
        ranking = self.step(
            f"{target.name}: py-spy under wrk (hot path)",
            lambda cb: sections.hot_path_profile(target, self.profile, self.work_dir, out, cb),
            target.name,
            "profile",
        )
        if ranking is None:
            return
        self.results["profiles"][target.name] = ranking
        top = ", ".join(f"{r['frame'].split(' (')[0]} {r['pct']}%" for r in ranking["focused"][:6])
        self.console.print(f"  {target.name} hot path ({ranking['samples']} samples): {top}")

    # ---- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        sim = start_simulator(self.log_dir)
        self.servers.append(sim)
        self.results["meta"]["simulator_url"] = sim.url
        if "direct" in self.targets:
            self.note_target("direct", "simulator (direct)", "ok", workers=1)
            self.measure(Target("direct", "simulator (direct)", sim.url, "bench", sim.pid, None, 1))
        if "passthrough" in self.targets:
            self._run_passthrough(sim)
        if "ours-sqlite" in self.targets:
            self._run_ours("ours-sqlite", "runapi, SQLite, 1 worker", sim, self._sqlite_setup("main"))
        if "ours-pg" in self.targets:
            setup = self._pg_setup()
            if setup is not None:
                self._run_ours("ours-pg", f"runapi, PG+Redis, {self.cores} workers", sim, setup)
                self._drop_pg()
        if "litellm" in self.targets:
            self._run_litellm(sim)
        if "d" in self.sections:
            self._run_memory(sim)
        if not sim.alive():
            self.results["errors"].append({"target": "simulator", "section": "run", "error": sim.tail()})

    def _skip_target(self, name: str) -> None:
        self.progress.advance(self.overall, self._steps_per_target())

    def _run_passthrough(self, sim: Server) -> None:
        try:
            server = start_passthrough(sim.url, self.log_dir)
        except RuntimeError as exc:
            self.note_target("passthrough", "bare pass-through", "failed", str(exc)[:300])
            self._skip_target("passthrough")
            return
        self.servers.append(server)
        self.note_target("passthrough", "bare pass-through", "ok", workers=1)
        self.measure(Target("passthrough", "bare pass-through", server.url, "bench", server.pid, sim.pid, 1))
        self.stop(server)

    def _sqlite_setup(self, tag: str) -> OursSetup:
        path = self.work_dir / f"runapi-{tag}.db"
        return OursSetup(database_url=f"sqlite+aiosqlite:///{path}", redis_url=None, workers=1)

    def _pg_setup(self) -> OursSetup | None:
        if not backends.reachable(backends.PG_ADMIN_URL, 5432):
            self.note_target(
                "ours-pg", "runapi, PG+Redis", "missing", "PostgreSQL is not running on 127.0.0.1:5432"
            )
            self._skip_target("ours-pg")
            return None
        if not backends.redis_ok():
            self.note_target(
                "ours-pg", "runapi, PG+Redis", "missing", "Redis is not answering on 127.0.0.1:6379"
            )
            self._skip_target("ours-pg")
            return None
        try:
            self.pg_url = backends.create_database()
        except Exception as exc:
            self.note_target("ours-pg", "runapi, PG+Redis", "failed", f"CREATE DATABASE: {exc}")
            self._skip_target("ours-pg")
            return None
        return OursSetup(database_url=self.pg_url, redis_url=backends.REDIS_URL, workers=self.cores)

    def _drop_pg(self) -> None:
        if self.pg_url:
            try:
                backends.drop_database(self.pg_url)
            finally:
                self.pg_url = None

    def _run_ours(self, name: str, label: str, sim: Server, setup: OursSetup) -> None:
        self.progress.reset(self.step_task, description=f"  {name}: starting", total=None, visible=True)
        try:
            server, key = start_ours(name, setup, sim.url, self.work_dir, self.log_dir)
        except Exception as exc:
            self.note_target(name, label, "failed", str(exc)[:1500])
            self._skip_target(name)
            return
        finally:
            self.progress.update(self.step_task, visible=False)
        self.servers.append(server)
        self.note_target(name, label, "ok", workers=setup.workers, database=setup.database_url.split(":")[0])
        self.measure(
            Target(name, label, server.url, key, server.pid, sim.pid, setup.workers, setup.database_url)
        )
        if not server.alive():
            self.results["errors"].append(
                {"target": name, "section": "process", "error": "exited: " + server.tail()}
            )
        self.stop(server)

    def _run_litellm(self, sim: Server) -> None:
        label = f"LiteLLM, {self.cores} workers"
        self.progress.reset(
            self.step_task, description="  litellm: preparing its venv", total=None, visible=True
        )

        def show(line: str) -> None:
            self.progress.update(self.step_task, description=f"  litellm venv: {line[:90]}")

        try:
            version, note = litellm_proxy.ensure_venv(show)
        except Exception as exc:
            version, note = None, f"{type(exc).__name__}: {exc}"
        if version is None:
            self.progress.update(self.step_task, visible=False)
            self.note_target("litellm", "LiteLLM", "missing", note)
            self._skip_target("litellm")
            return
        label = f"LiteLLM {version}, {self.cores} workers"
        self.results["meta"]["litellm_version"] = version
        self.progress.update(self.step_task, description="  litellm: starting the proxy (about 30 s)")
        try:
            server = litellm_proxy.start_litellm(sim.url, self.cores, self.work_dir, self.log_dir)
        except Exception as exc:
            self.note_target("litellm", label, "missing", f"did not start: {str(exc)[:800]}")
            self._skip_target("litellm")
            return
        finally:
            self.progress.update(self.step_task, visible=False)
        self.servers.append(server)
        self.note_target("litellm", label, "ok", workers=self.cores, note_install=note)
        self.measure(
            Target("litellm", label, server.url, litellm_proxy.MASTER_KEY, server.pid, sim.pid, self.cores)
        )
        self.stop(server)

    def _run_memory(self, sim: Server) -> None:
        name = "ours-sqlite"

        def start(_: OnProgress) -> tuple[Server, Target]:
            server, key = start_ours(
                f"{name}-memory", self._sqlite_setup("memory"), sim.url, self.work_dir, self.log_dir
            )
            self.servers.append(server)
            return server, Target(name, "runapi, SQLite (fresh)", server.url, key, server.pid, sim.pid, 1)

        started = self.step("(d) starting a fresh ours-sqlite", start, name, "memory")
        if started is None:
            self.progress.advance(self.overall)
            return
        server, target = started
        total = self.profile.memory_total
        data = self.step(
            f"(d) ours-sqlite: {total:,} requests, RSS every {self.profile.memory_step:,}",
            lambda cb: sections.memory(target, self.profile, self.work_dir, cb),
            name,
            "memory",
        )
        if data is not None:
            self.results["memory"][name] = data
            first, last = data["points"][1], data["points"][-1]
            self.console.print(
                f"  (d) RSS {first['rss_mb']:.1f} MB after {first['requests']:,} → "
                f"{last['rss_mb']:.1f} MB after "
                f"{last['requests']:,} requests"
                + (f" [red]({data['errors']} errors)" if data["errors"] else "")
                + (" [red]- the server stopped answering[/red]" if data["stalled"] else "")
            )
        self.stop(server)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--quick", action="store_true", help="short durations, K up to 1,000, (d) to 20k requests"
    )
    parser.add_argument(
        "--only", default=ALL_SECTIONS, help="sections to run, e.g. a,c (default: all of a-e)"
    )
    parser.add_argument("--targets", default=",".join(ALL_TARGETS), help=f"subset of {','.join(ALL_TARGETS)}")
    parser.add_argument("--skip-litellm", action="store_true", help="do not install or run LiteLLM")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also sample ours with py-spy under wrk (an extra run) and rank the hot path",
    )
    args = parser.parse_args(argv)
    args.only = sorted({letter for letter in args.only.lower() if letter.isalpha()})
    unknown = set(args.only) - set(ALL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; use letters a-e")
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = set(args.targets) - set(ALL_TARGETS)
    if bad:
        parser.error(f"unknown targets {sorted(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:  # piped to a file: wide enough for the tables
        console = Console(width=200)
    profile = QUICK if args.quick else FULL
    if set(args.only) & set("ade") and wrk.wrk_path() is None:
        console.print(f"[bold red]{wrk.INSTALL_HINT}[/bold red] Sections a, d and e are skipped in this run.")
        args.only = [s for s in args.only if s not in "ade"]
    if args.profile and flame.py_spy_path() is None:
        console.print(
            "[yellow]--profile needs py-spy (pip install py-spy, or `pip install -e '.[bench]'`); skipped"
        )
    fd_limit = raise_fd_limit()  # inherited by every server we start (thousands of streams)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    sha = git_sha()
    work_dir = Path(tempfile.mkdtemp(prefix=f"runapi-bench-{stamp}-"))
    console.rule(f"runapi bench — profile {profile.name} — sections {','.join(args.only)} — {sha}")
    console.print(f"logs and scratch files: {work_dir}")
    load1 = os.getloadavg()[0]
    if load1 > 0.5 * (os.cpu_count() or 2):
        console.print(
            f"[yellow]the machine is busy (load average {load1:.1f}): req/s will read low; "
            "CPU µs/request holds up better. `other_busy_cores` in the JSON shows the contention."
        )
    commits = machine.probe_commits(work_dir)
    ticks = machine.cpu_ticks()
    console.print(machine.describe(commits))
    if commits.slow:
        console.print(
            "[yellow]this disk makes commits wait: latency percentiles of ours (PostgreSQL above all, "
            "one fdatasync per commit) will read high; `meta.machine` in the JSON has the figures."
        )
    started = time.monotonic()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        runner = Runner(console, progress, profile, args, work_dir)
        runner.results["meta"] = {
            "timestamp": stamp,
            "git_sha": sha,
            "profile": profile.name,
            "profile_settings": profile.as_json(),
            "sections": args.only,
            "cores": runner.cores,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "fd_limit": fd_limit,
            "wrk": wrk.wrk_path(),
            "chat_body": CHAT_BODY,
            "stream_body": STREAM_BODY,
            "ideal_stream_s": IDEAL_STREAM_S,
            "work_dir": str(work_dir),
            "loadavg_at_start": os.getloadavg(),
        }
        try:
            runner.run()
        except KeyboardInterrupt:
            runner.results["meta"]["interrupted"] = True
            console.print("[yellow]interrupted: stopping servers and saving what was measured")
        except Exception as exc:
            runner.results["errors"].append(
                {"target": "bench", "section": "run", "error": traceback.format_exc()}
            )
            console.print(f"[red]bench aborted: {exc}")
        finally:
            runner.cleanup()
    results = runner.results
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    # Probed again after the run: a disk's speed can change within minutes on a shared host.
    steal = machine.steal_share(ticks, machine.cpu_ticks())
    after = machine.probe_commits(work_dir)
    results["meta"]["machine"] = {
        "commits_before": commits.as_json(),
        "commits_after": after.as_json(),
        "cpu_steal_share": steal,
    }
    console.print(machine.describe(after, steal))
    results["summary"] = report.summarize(results)
    stamped, _ = report.save(results, RESULTS, f"{stamp}-{sha}")
    try:
        png = plot.draw(results, RESULTS / "latest.png")
        console.print(f"plot: {png}")
    except Exception as exc:  # a missing matplotlib must not lose the measurements
        console.print(f"[yellow]no plot: {exc}")
    report.print_report(console, results, results["summary"])
    console.print(
        f"results: {stamped} (and {RESULTS / 'latest.json'}); took {results['meta']['seconds']:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
