"""Turn raw results into ratios and target checks, print them with rich, and save the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stats import difference, growth_pct, ratio

OURS = ("ours-sqlite", "ours-pg")
BASELINES = ("litellm", "passthrough", "direct")
ORDER = ("direct", "passthrough", "ours-sqlite", "ours-pg", "litellm")


def dig(data: Any, *path: str | int) -> Any:
    """data[path[0]][path[1]]…, or None as soon as a step is missing."""
    for step in path:
        if isinstance(data, dict):
            data = data.get(str(step))
        else:
            return None
        if data is None:
            return None
    return data


def _path(target: str, name: str) -> tuple[str, ...]:
    if name == "rps":
        return ("throughput", target, "ok_rps")
    if name == "cpu_us_per_req":
        return ("throughput", target, "cpu_us_per_req")
    if name.startswith(("p50@", "p99@")):
        pct, rate = name.split("@")
        return ("latency", target, rate, "latency_ms", pct)
    if name.startswith("stream_wall@"):
        return ("streams", target, name.split("@")[1], "wall_s")
    if name.startswith("peak_rss@"):
        return ("streams", target, name.split("@")[1], "peak_rss_mb")
    raise KeyError(name)


def metric(results: dict[str, Any], target: str, name: str) -> float | None:
    """One comparable figure of a target, by name (see METRICS)."""
    value = dig(results, *_path(target, name))
    return None if value is None else float(value)


METRICS = ("rps", "cpu_us_per_req", "p50@200", "p99@200", "stream_wall@1000", "peak_rss@1000")


def ratios(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """ours / baseline for every metric: above 1 means more req/s, or more CPU, latency, memory."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for ours in OURS:
        out[ours] = {
            name: {
                base: ratio(metric(results, ours, name), metric(results, base, name)) for base in BASELINES
            }
            for name in METRICS
        }
    return out


def added_latency(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Latency a target adds over calling the simulator directly, per rate and percentile (ms)."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    rates = sorted({rate for per in (results.get("latency") or {}).values() for rate in per}, key=int)
    for target in ORDER:
        if target == "direct" or target not in (results.get("latency") or {}):
            continue
        out[target] = {
            rate: {
                pct: difference(
                    dig(results, "latency", target, rate, "latency_ms", pct),
                    dig(results, "latency", "direct", rate, "latency_ms", pct),
                )
                for pct in ("p50", "p90", "p99")
            }
            for rate in rates
        }
    return out


def memory_growth(results: dict[str, Any]) -> dict[str, Any] | None:
    stalled = bool(dig(results, "memory", "ours-sqlite", "stalled"))
    points = dig(results, "memory", "ours-sqlite", "points")
    if not points or len(points) < 3:
        return None
    first = points[1]  # after the first step (10k requests): warm, pools and caches filled
    last = points[-1]
    return {
        "after_requests": first["requests"],
        "rss_mb": first["rss_mb"],
        "final_requests": last["requests"],
        "final_rss_mb": last["rss_mb"],
        "growth_pct": growth_pct(first["rss_mb"], last["rss_mb"]),
        "stalled": stalled,  # the server stopped answering before the planned count
    }


def _check(name: str, value: float | None, limit: str, ok: bool | None) -> dict[str, Any]:
    return {"target": name, "value": value, "limit": limit, "met": ok}


def _cmp(value: float | None, bound: float | None, higher_is_better: bool) -> bool | None:
    if value is None or bound is None:
        return None
    return value >= bound if higher_is_better else value <= bound


def target_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, read off this run (a report, never an assertion)."""
    checks: list[dict[str, Any]] = []
    cpu = metric(results, "ours-sqlite", "cpu_us_per_req")
    checks.append(_check("ours-sqlite CPU µs/request ≤ 165", cpu, "165", _cmp(cpu, 165, False)))
    rps_sqlite = metric(results, "ours-sqlite", "rps")
    rps_pass = metric(results, "passthrough", "rps")
    checks.append(
        _check(
            "ours-sqlite req/s ≥ pass-through req/s",
            ratio(rps_sqlite, rps_pass),
            "≥ 1.0x",
            _cmp(rps_sqlite, rps_pass, True),
        )
    )
    x_litellm = ratio(metric(results, "ours-pg", "rps"), metric(results, "litellm", "rps"))
    checks.append(_check("ours-pg req/s ≥ 25x LiteLLM", x_litellm, "≥ 25x", _cmp(x_litellm, 25, True)))
    added = added_latency(results)
    for ours in OURS:
        p99 = dig(added, ours, "200", "p99")
        checks.append(_check(f"{ours} added p99 @200 req/s ≤ 1.5 ms", p99, "1.5 ms", _cmp(p99, 1.5, False)))
    pass_wall = dig(results, "streams", "passthrough", "1000", "wall_s")
    for ours in OURS:
        clean = dig(results, "streams", ours, "1000", "clean")
        wall = dig(results, "streams", ours, "1000", "wall_s")
        ok = None if clean is None else (clean == 1000 and _cmp(wall, pass_wall, False) is not False)
        checks.append(
            _check(f"{ours} 1,000 streams clean, wall ≤ pass-through", clean, "1000, ≤ pass-through", ok)
        )
        done = dig(results, "streams", ours, "5000", "completed")
        checks.append(
            _check(f"{ours} 5,000 streams all complete", done, "5000", None if done is None else done == 5000)
        )
    rss = metric(results, "ours-sqlite", "peak_rss@1000")
    checks.append(
        _check("ours-sqlite peak RSS @1,000 streams ≤ 300 MB", rss, "300 MB", _cmp(rss, 300, False))
    )
    growth = memory_growth(results)
    g = growth["growth_pct"] if growth else None
    flat = None if g is None or growth is None else (abs(g) <= 5 and not growth["stalled"])
    checks.append(_check("ours-sqlite RSS flat (±5%) 10k → 100k requests", g, "±5%", flat))
    return checks


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "ratios": ratios(results),
        "added_latency_ms": added_latency(results),
        "memory_growth": memory_growth(results),
        "checks": target_checks(results),
    }


# ---- printing -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _err_mark(count: int) -> str:
    return f" [red]({count} err)[/red]" if count else ""


def _latency_cell(results: dict[str, Any], target: str, rate: str, pct: str) -> str:
    value = dig(results, "latency", target, rate, "latency_ms", pct)
    errors = dig(results, "latency", target, rate, "errors") or {}
    return _num(value, 2) + (_err_mark(sum(errors.values())) if pct == "p99" else "")


def _per_k(results: dict[str, Any], target: str, ks: list[str], field: str, digits: int) -> str:
    return " ".join(_num(dig(results, "streams", target, k, field), digits) for k in ks)


def absolute_table(results: dict[str, Any]) -> Table:
    ks = sorted({k for per in (results.get("streams") or {}).values() for k in per}, key=int)
    rates = sorted({r for per in (results.get("latency") or {}).values() for r in per}, key=int)
    added = added_latency(results)
    table = Table(title="Absolute figures (this machine, this run; latency in ms)")
    table.add_column("target")
    table.add_column("req/s\n(a)", justify="right")
    table.add_column("CPU µs\n/req (e)", justify="right")
    for rate in rates:
        table.add_column(f"p50\n@{rate}/s", justify="right")
        table.add_column(f"p99\n@{rate}/s", justify="right")
    if rates:
        table.add_column(f"added\np99 @{rates[-1]}", justify="right")
    table.add_column(f"streams clean (c)\nK = {' '.join(ks)}", justify="right")
    table.add_column("wall s\nper K", justify="right")
    table.add_column("RSS MB\n@1000", justify="right")
    for name in ORDER:
        info = dig(results, "targets", name)
        if info is None:
            continue
        label = name if info["status"] == "ok" else f"{name} [yellow]({info['status']})[/yellow]"
        tp = dig(results, "throughput", name) or {}
        row = [
            label,
            _num(tp.get("ok_rps")) + _err_mark((tp.get("non2xx") or 0) + (tp.get("socket_errors") or 0)),
        ]
        row.append(_num(tp.get("cpu_us_per_req")))
        for rate in rates:
            row += [_latency_cell(results, name, rate, "p50"), _latency_cell(results, name, rate, "p99")]
        if rates:
            row.append(_num(dig(added, name, rates[-1], "p99"), 2))
        row.append(_per_k(results, name, ks, "clean", 0))
        row.append(_per_k(results, name, ks, "wall_s", 1))
        row.append(_num(dig(results, "streams", name, "1000", "peak_rss_mb")))
        table.add_row(*row)
    return table


def legend(results: dict[str, Any]) -> str:
    parts = [f"{name} = {info['label']}" for name, info in (results.get("targets") or {}).items()]
    return "targets: " + "; ".join(parts)


_METRIC_LABELS = {
    "rps": "req/s",
    "cpu_us_per_req": "CPU µs/req",
    "p50@200": "p50 @200",
    "p99@200": "p99 @200",
    "stream_wall@1000": "wall @1000 streams",
    "peak_rss@1000": "RSS @1000 streams",
}


def ratio_table(results: dict[str, Any], summary: dict[str, Any]) -> Table:
    table = Table(title="Ratios: ours ÷ baseline (req/s: higher is better; the rest: lower is better)")
    table.add_column("ours")
    table.add_column("metric")
    for base in BASELINES:
        table.add_column(f"÷ {base}", justify="right")
    for ours in OURS:
        if dig(results, "targets", ours, "status") != "ok":
            continue
        for name in METRICS:
            row = summary["ratios"][ours][name]
            table.add_row(ours, _METRIC_LABELS[name], *[_num(row[b], 2, "x") for b in BASELINES])
    return table


def checks_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Issue targets (a report of this run, not a test)")
    table.add_column("target")
    table.add_column("value", justify="right")
    table.add_column("met")
    for check in summary["checks"]:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "[dim]n/a[/dim]"}[check["met"]]
        value = check["value"]
        table.add_row(check["target"], "-" if value is None else f"{value:,.2f}", met)
    return table


def print_report(console: Console, results: dict[str, Any], summary: dict[str, Any]) -> None:
    console.print(absolute_table(results))
    console.print(legend(results), style="dim")
    console.print(ratio_table(results, summary))
    growth = summary.get("memory_growth")
    if growth and growth["stalled"]:
        console.print("[red](d) ours-sqlite stopped answering during the memory run: see its log[/red]")
    if growth:
        console.print(
            f"(d) ours-sqlite RSS: {growth['rss_mb']:.1f} MB after {growth['after_requests']:,} requests → "
            f"{growth['final_rss_mb']:.1f} MB after {growth['final_requests']:,} "
            f"({growth['growth_pct']:+.1f}%)"
        )
    console.print(checks_table(summary))
    for name, ranking in (results.get("profiles") or {}).items():
        console.print(
            f"[bold]{name} hot path[/bold] (py-spy, GIL samples: {ranking['samples']}; {ranking['file']})"
        )
        for row in ranking.get("focused", ranking["inclusive"])[:12]:
            console.print(f"  {row['pct']:5.1f}%  {row['frame']}")
    for error in results.get("errors", []):
        console.print(f"[red]error[/red] {error['target']} / {error['section']}: {error['error'][:400]}")


def save(results: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=False, default=str)
    stamped = out_dir / f"{stem}.json"
    stamped.write_text(text)
    latest = out_dir / "latest.json"
    latest.write_text(text)
    return stamped, latest
