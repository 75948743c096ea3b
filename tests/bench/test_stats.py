"""The benchmark's pure arithmetic: percentiles, ratios and the report's derived figures."""

from __future__ import annotations

import pytest
from bench.flame import rank
from bench.report import added_latency, memory_growth, ratios, target_checks
from bench.stats import cpu_us_per_request, growth_pct, percentile, ratio, split_evenly, summarize_ms
from bench.wrk import parse_output


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_percentile_of_nothing_is_none_and_bad_pct_raises() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="pct"):
        percentile([1.0], 101)


def test_summarize_reports_milliseconds() -> None:
    summary = summarize_ms([0.001, 0.002, 0.003])
    assert summary["p50"] == pytest.approx(2.0)
    assert summary["max"] == pytest.approx(3.0)
    assert summary["mean"] == pytest.approx(2.0)
    assert summarize_ms([])["p99"] is None


def test_ratio_growth_and_cpu_per_request_handle_missing_values() -> None:
    assert ratio(10, 4) == 2.5
    assert ratio(None, 4) is None
    assert ratio(3, 0) is None
    assert growth_pct(100, 104) == pytest.approx(4.0)
    assert growth_pct(0, 5) is None
    assert cpu_us_per_request(1.5, 10_000) == pytest.approx(150.0)
    assert cpu_us_per_request(1.0, 0) is None


def test_split_evenly_keeps_the_total() -> None:
    assert split_evenly(10_000, 3) == [3334, 3333, 3333]
    assert sum(split_evenly(7, 2)) == 7
    with pytest.raises(ValueError, match="parts"):
        split_evenly(5, 0)


TARGETS = ("direct", "passthrough", "ours-sqlite", "litellm")


def _results() -> dict[str, object]:
    def lat(p50: float, p99: float) -> dict[str, object]:
        return {"latency_ms": {"p50": p50, "p90": p50, "p99": p99}, "errors": {}}

    return {
        "targets": {
            n: {"label": n, "status": "ok"} for n in ("direct", "passthrough", "ours-sqlite", "litellm")
        },
        "throughput": {
            "direct": {"ok_rps": 8000.0, "cpu_us_per_req": 120.0},
            "passthrough": {"ok_rps": 4000.0, "cpu_us_per_req": 160.0},
            "ours-sqlite": {"ok_rps": 5000.0, "cpu_us_per_req": 140.0},
            "litellm": {"ok_rps": 100.0, "cpu_us_per_req": 10_000.0},
        },
        "latency": {
            "direct": {"200": lat(1.0, 2.0)},
            "ours-sqlite": {"200": lat(1.5, 3.0)},
            "litellm": {"200": lat(20.0, 90.0)},
        },
        "streams": {"ours-sqlite": {"1000": {"clean": 1000, "wall_s": 0.9, "peak_rss_mb": 120.0}}},
        "memory": {
            "ours-sqlite": {
                "points": [
                    {"requests": 0, "rss_mb": 50.0},
                    {"requests": 10_000, "rss_mb": 100.0},
                    {"requests": 100_000, "rss_mb": 103.0},
                ]
            }
        },
    }


def test_ratios_divide_ours_by_each_baseline() -> None:
    table = ratios(_results())
    assert table["ours-sqlite"]["rps"]["litellm"] == pytest.approx(50.0)
    assert table["ours-sqlite"]["rps"]["passthrough"] == pytest.approx(1.25)
    assert table["ours-sqlite"]["cpu_us_per_req"]["direct"] == pytest.approx(140 / 120)
    assert table["ours-pg"]["rps"]["litellm"] is None  # not measured: no ratio, no crash


def test_added_latency_and_memory_growth() -> None:
    results = _results()
    added = added_latency(results)
    assert added["ours-sqlite"]["200"]["p99"] == pytest.approx(1.0)
    assert added["litellm"]["200"]["p50"] == pytest.approx(19.0)
    growth = memory_growth(results)
    assert growth is not None
    assert growth["growth_pct"] == pytest.approx(3.0)  # measured from the 10k point, not from idle


def test_target_checks_read_the_issue_targets() -> None:
    checks = {c["target"]: c["met"] for c in target_checks(_results())}
    assert checks["ours-sqlite CPU µs/request ≤ 165"] is True
    assert checks["ours-sqlite req/s ≥ pass-through req/s"] is True
    assert checks["ours-sqlite added p99 @200 req/s ≤ 1.5 ms"] is True
    assert checks["ours-sqlite RSS flat (±5%) 10k → 100k requests"] is True
    assert checks["ours-pg req/s ≥ 25x LiteLLM"] is None


def test_wrk_summary_line_is_parsed() -> None:
    out = (
        "Running 3s test\n  Non-2xx or 3xx responses: 7\n"
        'WRKJSON {"requests":3000,"duration_us":3000000,"bytes":10,"connect":0,"read":1,"write":0,'
        '"status":7,"timeout":0,"p50_us":1500,"p90_us":2000,"p99_us":4000,"max_us":9000}\n'
    )
    result = parse_output(out)
    assert result.rps == pytest.approx(1000.0)
    assert result.non2xx == 7
    assert result.socket_errors == 1
    assert result.latency_ms["p99"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="WRKJSON"):
        parse_output("nothing here")


def test_rank_orders_frames_by_own_and_inclusive_time() -> None:
    root = "process 1:main;serve (runapi/cli/serve.py:70)"
    lines = [
        f"{root};handle (runapi/pipeline.py:1);settle (ledger.py:9) 6\n",
        f"{root};handle (runapi/pipeline.py:1);encode (json.py:3) 3\n",
        f"{root};read (aiohttp/http.py:2) 1\n",
        "garbage line\n",
    ]
    ranking = rank(lines)
    assert ranking["samples"] == 10
    assert ranking["own"][0] == {"frame": "settle (ledger.py:9)", "pct": 60.0}
    inclusive = [r["frame"] for r in ranking["inclusive"]]
    assert inclusive[0] == "handle (runapi/pipeline.py:1)"  # 90% of samples
    assert not any("runapi/cli/" in f for f in inclusive)  # entry points say nothing
    assert [r["frame"] for r in ranking["focused"]] == ["handle (runapi/pipeline.py:1)"]
    assert rank([])["samples"] == 0


def test_a_memory_run_that_stalled_does_not_count_as_flat() -> None:
    results = _results()
    memory = results["memory"]
    assert isinstance(memory, dict)
    memory["ours-sqlite"]["stalled"] = True
    checks = {c["target"]: c["met"] for c in target_checks(results)}
    assert checks["ours-sqlite RSS flat (±5%) 10k → 100k requests"] is False
