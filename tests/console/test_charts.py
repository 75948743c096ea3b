"""The inline SVG charts: valid XML, one mark per datum, correct scaling, empty and odd data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from runapi.console.charts import (
    Series,
    bar_chart,
    format_count,
    format_usd,
    hbar_chart,
    line_chart,
    nice_ticks,
)

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def marks(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if e.get("class") == css]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def f(e: ET.Element, name: str) -> float:
    return float(e.get(name) or "nan")


# ---------------------------------------------------------------- ticks and formats


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 7.3, [0, 2, 4, 6, 8]),
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (0, 0.0042, [0, 0.001, 0.002, 0.003, 0.004, 0.005]),
        (-3, 10, [-5, 0, 5, 10]),
        (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),  # nothing happened: still a readable axis
    ],
)
def test_nice_ticks_cover_the_range_with_round_steps(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_integer_ticks_never_step_below_one() -> None:
    assert nice_ticks(0, 2, integer=True) == [0, 1, 2]
    assert nice_ticks(0, 0, integer=True) == [0, 1]


def test_nice_ticks_refuse_non_finite_bounds() -> None:
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0, float("inf"))


def test_formats() -> None:
    assert [format_count(v) for v in (0, 950, 12_300, 4_500_000, 2.5)] == ["0", "950", "12.3k", "4.5M", "2.5"]
    assert [format_usd(v) for v in (0, 0.0042, 0.3, 12.5, 1500)] == [
        "$0",
        "$0.0042",
        "$0.30",
        "$12.50",
        "$1.5k",
    ]


# ---------------------------------------------------------------- line chart


def test_line_chart_has_a_point_per_value_and_a_legend_per_series() -> None:
    labels = ["04-01", "04-02", "04-03", "04-04"]
    svg = line_chart(labels, [Series("a", [1, 2, 3, 4]), Series("b", [4, 3, 2, 1])], title="Tokens")
    root = parse(svg)
    assert len(marks(root, "circle", "point")) == 8
    assert len(marks(root, "polyline", "line")) == 2
    assert len(marks(root, "g", "legend-item")) == 2
    assert root.get("aria-label") == "Tokens"
    assert "Tokens" in texts(root)


def test_line_chart_scales_values_to_the_plot_area() -> None:
    root = parse(line_chart(["a", "b", "c"], [Series("s", [0, 5, 10])], title="t"))
    points = marks(root, "circle", "point")
    ys = [f(p, "cy") for p in points]
    xs = [f(p, "cx") for p in points]
    # Higher values sit higher (smaller y), linearly: the middle value is halfway.
    assert ys[0] > ys[1] > ys[2]
    assert ys[1] == pytest.approx((ys[0] + ys[2]) / 2, abs=0.02)
    assert xs[0] < xs[1] < xs[2]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.02)
    # The zero value sits on the zero axis line, the top value on the top tick (10).
    zero_line = next(e for e in root.iter(f"{NS}line") if e.get("class") == "axis")
    assert ys[0] == pytest.approx(f(zero_line, "y1"))
    assert "10" in texts(root)


def test_single_series_line_chart_has_no_legend_and_tooltips_name_the_value() -> None:
    root = parse(line_chart(["x"], [Series("Spend", [0.25])], title="t", value_format=format_usd))
    assert marks(root, "g", "legend-item") == []
    tip = marks(root, "circle", "point")[0].find(f"{NS}title")
    assert tip is not None
    assert tip.text == "x: $0.25"


def test_empty_line_chart_is_valid_and_says_so() -> None:
    for svg in (line_chart([], [], title="t"), line_chart([], [Series("s", [])], title="t")):
        root = parse(svg)
        assert marks(root, "circle", "point") == []
        assert "No data yet" in texts(root)


def test_all_zero_data_draws_a_flat_line_on_the_axis() -> None:
    root = parse(line_chart(["a", "b"], [Series("s", [0, 0])], title="t"))
    ys = {f(p, "cy") for p in marks(root, "circle", "point")}
    assert len(ys) == 1


def test_misaligned_series_are_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        line_chart(["a", "b", "c"], [Series("s", [1, 2])], title="t")
    with pytest.raises(ValueError, match="finite"):
        line_chart(["a"], [Series("s", [float("nan")])], title="t")


# ---------------------------------------------------------------- bar charts


def test_stacked_bars_one_rect_per_value_stacked_to_the_total() -> None:
    labels = ["d1", "d2", "d3"]
    root = parse(bar_chart(labels, [Series("a", [1, 0, 3]), Series("b", [2, 4, 1])], title="Requests"))
    bars = marks(root, "rect", "bar")
    assert len(bars) == 6
    # d1: a (1) then b (2) stacked: b starts where a ends, and the heights are proportional.
    a1, b1 = bars[0], bars[1]
    assert f(b1, "y") + f(b1, "height") == pytest.approx(f(a1, "y"), abs=0.02)
    assert f(b1, "height") == pytest.approx(2 * f(a1, "height"), abs=0.05)
    assert f(a1, "x") == f(b1, "x")
    # d2's zero for "a" is a zero-height bar, still present.
    assert f(bars[2], "height") == 0
    # The tallest stack (d2, 4) fits under the top tick.
    assert "4" in texts(root)


def test_grouped_bars_sit_side_by_side() -> None:
    root = parse(bar_chart(["d1"], [Series("a", [1]), Series("b", [2])], title="t", stacked=False))
    a, b = marks(root, "rect", "bar")
    assert f(b, "x") > f(a, "x")
    assert f(b, "height") == pytest.approx(2 * f(a, "height"), abs=0.05)


def test_negative_bars_go_below_the_zero_line() -> None:
    root = parse(bar_chart(["d1", "d2"], [Series("net", [3, -2])], title="t"))
    up, down = marks(root, "rect", "bar")
    zero = next(e for e in root.iter(f"{NS}line") if e.get("class") == "axis")
    assert f(up, "y") + f(up, "height") == pytest.approx(f(zero, "y1"), abs=0.02)
    assert f(down, "y") == pytest.approx(f(zero, "y1"), abs=0.02)


def test_many_labels_are_thinned_but_the_last_is_kept() -> None:
    labels = [f"04-{d:02d}" for d in range(1, 31)]
    root = parse(bar_chart(labels, [Series("s", list(range(30)))], title="t", integer=True))
    shown = [e.text for e in root.iter(f"{NS}text") if e.get("class") == "xlabel"]
    assert 2 <= len(shown) < 30
    assert shown[-1] == "04-30"


def test_horizontal_bars_one_per_category_proportional_to_value() -> None:
    models = ["MiniMax-M2", "MiniMax-M2.5-highspeed", "local"]
    root = parse(hbar_chart(models, [1.2, 2.4, 0], title="Output price", value_format=format_usd))
    bars = marks(root, "rect", "bar")
    assert len(bars) == 3
    assert f(bars[1], "width") == pytest.approx(2 * f(bars[0], "width"), abs=0.05)
    assert f(bars[2], "width") == 0
    assert {"MiniMax-M2", "$1.20", "$2.40"} <= set(texts(root))


def test_empty_horizontal_chart() -> None:
    root = parse(hbar_chart([], [], title="Top models"))
    assert marks(root, "rect", "bar") == []
    assert "No data yet" in texts(root)
    with pytest.raises(ValueError, match="one value per label"):
        hbar_chart(["a"], [], title="t")


# ---------------------------------------------------------------- safety and determinism


def test_labels_and_titles_are_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    svg = line_chart([hostile], [Series(hostile, [1]), Series("b", [2])], title=hostile)
    svg += hbar_chart([hostile], [1], title=hostile)
    assert "<script>" not in svg
    for part in svg.split("</svg>")[:-1]:
        root = parse(part + "</svg>")  # still well-formed XML
        assert hostile in texts(root)


def test_output_is_deterministic() -> None:
    def draw() -> str:
        series = [Series("a", [0.1, 0.2, 0.3]), Series("b", [3, 2, 1])]
        return bar_chart(["x", "y", "z"], series, title="t") + line_chart(["x", "y", "z"], series, title="t")

    assert draw() == draw()
    assert "-0" not in draw().replace("-0.", "")  # no negative zero coordinates
