"""One PNG of a run: throughput, CPU per request, latency percentiles, streams, memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import ORDER, dig

_COLORS = {
    "direct": "#9e9e9e",
    "passthrough": "#607d8b",
    "ours-sqlite": "#2e7d32",
    "ours-pg": "#66bb6a",
    "litellm": "#c62828",
}


def _present(results: dict[str, Any]) -> list[str]:
    return [n for n in ORDER if dig(results, "targets", n, "status") == "ok"]


def _bars(
    ax: Any, names: list[str], values: list[float | None], title: str, unit: str, log: bool = False
) -> None:
    heights = [v or 0.0 for v in values]
    bars = ax.bar(range(len(names)), heights, color=[_COLORS[n] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    if log and any(h > 0 for h in heights):
        ax.set_yscale("log")
    for bar, value in zip(bars, values, strict=True):
        label = "-" if value is None else f"{value:,.0f}"
        ax.annotate(
            label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7
        )


def draw(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _present(results)
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    meta = results.get("meta", {})
    fig.suptitle(
        f"runapi bench — {meta.get('git_sha', '?')} — {meta.get('timestamp', '')} — "
        f"profile {meta.get('profile', '?')}",
        fontsize=12,
    )

    _bars(
        axes[0][0],
        names,
        [dig(results, "throughput", n, "ok_rps") for n in names],
        "(a) saturation throughput",
        "req/s",
    )
    _bars(
        axes[0][1],
        names,
        [dig(results, "throughput", n, "cpu_us_per_req") for n in names],
        "(e) server CPU per request (log)",
        "µs / request",
        log=True,
    )

    ax = axes[0][2]
    rates = sorted({r for per in (results.get("latency") or {}).values() for r in per}, key=int)
    width = 0.8 / max(1, len(names))
    groups = [(rate, pct) for rate in rates for pct in ("p50", "p90", "p99")]
    for i, name in enumerate(names):
        values = [dig(results, "latency", name, rate, "latency_ms", pct) or 0.0 for rate, pct in groups]
        ax.bar([g + i * width for g in range(len(groups))], values, width, color=_COLORS[name], label=name)
    ax.set_xticks(
        [g + 0.4 - width / 2 for g in range(len(groups))], [f"{p}\n@{r}/s" for r, p in groups], fontsize=8
    )
    ax.set_yscale("log")
    ax.set_title("(b) open-loop latency (log)", fontsize=10)
    ax.set_ylabel("ms", fontsize=8)
    ax.legend(fontsize=7)

    ax = axes[1][0]
    ks = sorted({k for per in (results.get("streams") or {}).values() for k in per}, key=int)
    for i, name in enumerate(names):
        values = [
            100.0 * (dig(results, "streams", name, k, "clean") or 0) / int(k)
            if dig(results, "streams", name, k)
            else 0.0
            for k in ks
        ]
        ax.bar([g + i * width for g in range(len(ks))], values, width, color=_COLORS[name], label=name)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(ks))], [f"K={k}" for k in ks], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_title("(c) streams finished without a >1 s gap", fontsize=10)
    ax.set_ylabel("% of K", fontsize=8)

    ax = axes[1][1]
    for i, name in enumerate(names):
        values = [dig(results, "streams", name, k, "wall_s") or 0.0 for k in ks]
        ax.bar([g + i * width for g in range(len(ks))], values, width, color=_COLORS[name], label=name)
    ideal = dig(results, "meta", "ideal_stream_s")
    if ideal:
        ax.axhline(ideal, color="black", linestyle="--", linewidth=0.8, label="ideal")
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(ks))], [f"K={k}" for k in ks], fontsize=8)
    ax.set_title("(c) wall time of K streams (ideal 0.5 s)", fontsize=10)
    ax.set_ylabel("s", fontsize=8)
    ax.legend(fontsize=7)

    ax = axes[1][2]
    points = dig(results, "memory", "ours-sqlite", "points") or []
    if points:
        ax.plot(
            [p["requests"] / 1000 for p in points],
            [p["rss_mb"] for p in points],
            marker="o",
            color=_COLORS["ours-sqlite"],
        )
        ax.set_ylim(bottom=0)
    ax.set_title("(d) ours-sqlite RSS vs requests served", fontsize=10)
    ax.set_xlabel("thousand requests", fontsize=8)
    ax.set_ylabel("MB", fontsize=8)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
