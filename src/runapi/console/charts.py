"""Inline SVG charts drawn in Python: line, vertical bar (stacked or grouped) and horizontal bar.

Why not a JavaScript chart library: the console fetches nothing from a CDN and runs no inline
script, and a chart computed on the server is one string a test can parse. The output is
deterministic (fixed layout, fixed number formatting, no ids, no randomness), so equal data gives
equal bytes. Colours are SVG presentation attributes, not `style`, so a strict CSP still applies.

Every drawn datum carries a class (`point`, `bar`) and a `<title>` (the browser's tooltip); every
label is XML-escaped here, because the caller inserts the SVG into a page as-is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "HEIGHT",
    "PALETTE",
    "WIDE",
    "WIDTH",
    "Series",
    "bar_chart",
    "format_count",
    "format_usd",
    "hbar_chart",
    "line_chart",
    "nice_ticks",
]

# Tableau 10: distinct in print and for the common colour-vision deficiencies.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_TEXT = "#3b3f45"
_MUTED = "#6b7280"
_GRID = "#e5e7eb"
_AXIS = "#9ca3af"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_CHAR_WIDTH = 6.2  # average advance of an 11px sans-serif glyph, for layout estimates

# Sized for the console's layout (half and full width at about 1:1 on a laptop screen), so text is
# neither blown up nor shrunk when the SVG is scaled to its box.
WIDTH = 560
WIDE = 1160
HEIGHT = 260

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One named row of values, aligned with the chart's labels."""

    name: str
    values: Sequence[float]


def format_count(value: float) -> str:
    """`950` → `950`, `12_300` → `12.3k`, `4_500_000` → `4.5M`."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return sign + _trim(f"{value / limit:.1f}") + suffix
    if value == int(value):
        return sign + str(int(value))
    return sign + _trim(f"{value:.2f}")


def format_usd(value: float) -> str:
    """Axis and tooltip USD: `$0`, `$0.0042`, `$1.25`, `$1.2k`."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "$0"
    if value >= 1000:
        return sign + "$" + format_count(value)
    if value >= 1:
        return sign + "$" + f"{value:.2f}"
    # Small amounts keep two significant digits: per-day spend is often fractions of a cent.
    digits = max(2, 1 - math.floor(math.log10(value)))
    text = f"{value:.{digits}f}"
    return sign + "$" + (text if digits == 2 else _trim(text))


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 x 10^k apart) covering [low, high], about `count` of them.

    An empty range (all values equal, e.g. all zero) still gets a readable axis from `low` up.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("ticks need finite bounds")
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (1.0 if low >= 0 else abs(low))
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for multiple in (1, 2, 2.5, 5, 10):
        if multiple * magnitude >= raw * (1 - 1e-9):
            step = multiple * magnitude
            break
    if integer:
        step = max(1.0, float(math.ceil(step)))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    n = round((last - first) / step)
    return [_clean(first + i * step) for i in range(n + 1)]


# ---------------------------------------------------------------- public charts


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    value_format: Formatter = format_count,
    integer: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One polyline with a point per label for each series; a legend when there are several."""
    _check_aligned(labels, series)
    canvas = _Canvas(title, width, height, [s.name for s in series] if len(series) > 1 else [])
    if not labels or not series:
        return canvas.empty()
    low, high = _bounds(v for s in series for v in s.values)
    frame = canvas.frame(labels, nice_ticks(low, high, integer=integer), value_format)
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        xy = [(frame.x_center(i), frame.y(v)) for i, v in enumerate(s.values)]
        if len(xy) > 1:
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in xy)
            canvas.add(
                f'<polyline class="line" fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-linejoin="round" points="{points}"/>'
            )
        for i, (x, y) in enumerate(xy):
            tip = _tip(labels[i], s.name if len(series) > 1 else "", value_format(s.values[i]))
            canvas.add(
                f'<circle class="point" cx="{_n(x)}" cy="{_n(y)}" r="2.5" fill="{colour}">'
                f"<title>{tip}</title></circle>"
            )
    return canvas.finish()


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    stacked: bool = True,
    value_format: Formatter = format_count,
    integer: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Vertical bars, one band per label: series stacked (a total per label) or side by side.

    Every value gets one `rect.bar`, zero-height when the value is zero, so the count is always
    labels x series. Negative values are drawn below the zero line (stacked separately).
    """
    _check_aligned(labels, series)
    canvas = _Canvas(title, width, height, [s.name for s in series] if len(series) > 1 else [])
    if not labels or not series:
        return canvas.empty()
    if stacked:
        ups = [sum(max(0.0, s.values[i]) for s in series) for i in range(len(labels))]
        downs = [sum(min(0.0, s.values[i]) for s in series) for i in range(len(labels))]
        low, high = _bounds([*ups, *downs])
    else:
        low, high = _bounds(v for s in series for v in s.values)
    frame = canvas.frame(labels, nice_ticks(low, high, integer=integer), value_format)
    band = frame.band
    gap = band * 0.2
    for i, label in enumerate(labels):
        left = frame.x_band(i) + gap / 2
        inner = band - gap
        up = down = 0.0
        for index, s in enumerate(series):
            value = s.values[i]
            if stacked:
                base = up if value >= 0 else down
                top = base + value
                if value >= 0:
                    up = top
                else:
                    down = top
                x, w = left, inner
            else:
                base, top = 0.0, value
                w = inner / len(series)
                x = left + index * w
            y0, y1 = frame.y(base), frame.y(top)
            tip = _tip(label, s.name if len(series) > 1 else "", value_format(value))
            canvas.add(
                f'<rect class="bar" x="{_n(x)}" y="{_n(min(y0, y1))}" width="{_n(max(w - 0.5, 0.5))}" '
                f'height="{_n(abs(y1 - y0))}" fill="{PALETTE[index % len(PALETTE)]}">'
                f"<title>{tip}</title></rect>"
            )
    return canvas.finish()


def hbar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    value_format: Formatter = format_count,
    width: int = WIDTH,
    row_height: int = 22,
    colour: str = PALETTE[0],
) -> str:
    """Horizontal bars for named categories (model ids are long), each value written at its bar."""
    if len(labels) != len(values):
        raise ValueError("one value per label")
    label_width = min(240.0, max((len(s) for s in labels), default=0) * _CHAR_WIDTH + 12)
    height = 48 + max(1, len(labels)) * row_height + 24
    canvas = _Canvas(title, width, height, [])
    if not labels:
        return canvas.empty()
    low, high = _bounds(values)
    ticks = nice_ticks(low, high)
    left, right = 8 + label_width, width - 72  # room for the value text after the longest bar
    top = 40.0
    bottom = top + len(labels) * row_height

    def x_of(value: float) -> float:
        return left + (value - ticks[0]) / (ticks[-1] - ticks[0]) * (right - left)

    for tick in ticks:
        x = x_of(tick)
        canvas.add(_line("grid", x, top, x, bottom, _GRID))
        canvas.add(_text(x, bottom + 14, value_format(tick), anchor="middle", fill=_MUTED))
    zero = x_of(0.0)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_height
        x0, x1 = sorted((zero, x_of(value)))
        canvas.add(_text(left - 8, y + row_height / 2 + 4, _clip(label, label_width), anchor="end"))
        canvas.add(
            f'<rect class="bar" x="{_n(x0)}" y="{_n(y + 4)}" width="{_n(x1 - x0)}" '
            f'height="{_n(row_height - 8)}" fill="{colour}"><title>{_tip(label, "", value_format(value))}'
            "</title></rect>"
        )
        canvas.add(_text(max(x1, zero) + 4, y + row_height / 2 + 4, value_format(value), fill=_MUTED))
    canvas.add(_line("axis", zero, top, zero, bottom, _AXIS))
    return canvas.finish()


# ---------------------------------------------------------------- layout


class _Frame:
    """The plot area of a chart with a category x axis and a linear y axis."""

    def __init__(self, left: float, top: float, right: float, bottom: float, n: int, ticks: list[float]):
        self.left, self.top, self.right, self.bottom = left, top, right, bottom
        self.n = n
        self.low, self.high = ticks[0], ticks[-1]
        self.band = (right - left) / n

    def y(self, value: float) -> float:
        return self.bottom - (value - self.low) / (self.high - self.low) * (self.bottom - self.top)

    def x_band(self, i: int) -> float:
        return self.left + i * self.band

    def x_center(self, i: int) -> float:
        return self.left + (i + 0.5) * self.band


class _Canvas:
    def __init__(self, title: str, width: int, height: int, legend: list[str]) -> None:
        self.title, self.width = title, width
        self.parts: list[str] = []
        self.legend_rows = _legend_rows(legend, width - 24)
        self.height = height + 18 * len(self.legend_rows)

    def add(self, part: str) -> None:
        self.parts.append(part)

    def empty(self) -> str:
        self.add(_text(self.width / 2, self.height / 2, "No data yet", anchor="middle", fill=_MUTED))
        return self.finish()

    def frame(self, labels: Sequence[str], ticks: list[float], fmt: Formatter) -> _Frame:
        tick_width = max(len(fmt(t)) for t in ticks) * _CHAR_WIDTH
        left = max(40.0, 14 + tick_width)
        top, bottom = 36.0, self.height - 18 * len(self.legend_rows) - 30
        frame = _Frame(left, top, self.width - 16, bottom, len(labels), ticks)
        for tick in ticks:
            y = frame.y(tick)
            kind, colour = ("axis", _AXIS) if tick == 0 else ("grid", _GRID)
            self.add(_line(kind, left, y, frame.right, y, colour))
            self.add(_text(left - 6, y + 4, fmt(tick), anchor="end", fill=_MUTED))
        # Thin the x labels so they never overlap: every k-th one, always including the last.
        widest = max(len(s) for s in labels) * _CHAR_WIDTH + 10
        every = max(1, math.ceil(widest / frame.band))
        last = len(labels) - 1
        for i, label in enumerate(labels):
            if (last - i) % every:
                continue
            self.add(_text(frame.x_center(i), bottom + 16, label, anchor="middle", fill=_MUTED, css="xlabel"))
        return frame

    def finish(self) -> str:
        head = (
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'aria-label="{escape(self.title)}" '
            f'viewBox="0 0 {self.width} {self.height}" width="{self.width}" height="{self.height}" '
            f'font-family="{escape(_FONT)}" font-size="11">'
        )
        title = _text(12, 20, self.title, fill=_TEXT, css="title", weight="600", size=13)
        legend = []
        y = self.height - 18 * len(self.legend_rows) + 4
        index = 0
        for row in self.legend_rows:
            x = 12.0
            for name in row:
                colour = PALETTE[index % len(PALETTE)]
                legend.append(
                    f'<g class="legend-item"><rect x="{_n(x)}" y="{_n(y)}" width="10" height="10" rx="2" '
                    f'fill="{colour}"/>{_text(x + 14, y + 9, name, fill=_TEXT)}</g>'
                )
                x += _legend_width(name)
                index += 1
            y += 18
        return "".join([head, title, *self.parts, *legend, "</svg>"])


def _legend_width(name: str) -> float:
    return 14 + len(name) * _CHAR_WIDTH + 16


def _legend_rows(names: list[str], room: float) -> list[list[str]]:
    rows: list[list[str]] = []
    used = room
    for name in names:
        if used + _legend_width(name) > room and (not rows or rows[-1]):
            rows.append([])
            used = 0.0
        rows[-1].append(name)
        used += _legend_width(name)
    return rows


# ---------------------------------------------------------------- helpers


def _check_aligned(labels: Sequence[str], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")


def _bounds(values: Iterable[float]) -> tuple[float, float]:
    """The value range, always including zero (bars and spend start from zero)."""
    seen = [float(v) for v in values]
    if any(not math.isfinite(v) for v in seen):
        raise ValueError("chart values must be finite")
    return min(0.0, *seen), max(0.0, *seen)


def _line(css: str, x1: float, y1: float, x2: float, y2: float, colour: str) -> str:
    return f'<line class="{css}" x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{colour}"/>'


def _text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str = "start",
    fill: str = _TEXT,
    css: str = "",
    weight: str = "",
    size: int = 0,
) -> str:
    extra = (f' class="{css}"' if css else "") + (f' font-weight="{weight}"' if weight else "")
    extra += f' font-size="{size}"' if size else ""
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{fill}"{extra}>{escape(content)}</text>'
    )


def _tip(label: str, name: str, value: str) -> str:
    return escape(f"{label} · {name}: {value}" if name else f"{label}: {value}")


def _clip(label: str, room: float) -> str:
    most = max(4, int((room - 12) / _CHAR_WIDTH + 1e-6))
    return label if len(label) <= most else label[: most - 1] + "…"


def _n(value: float) -> str:
    """Coordinates with two decimals at most and no `-0`, so output bytes are stable."""
    text = _trim(f"{value:.2f}")
    return "0" if text == "-0" else text


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _clean(value: float) -> float:
    # 0.1 + 0.2 style noise would otherwise leak into tick labels.
    return round(value, 10) + 0.0
