"""Inline SVG charts for report.html: the hold timeline and the latency scatter.

Everything is drawn by hand as SVG text (no plotting library, nothing fetched): every piece of
text that comes from a run goes through ``escape``. Sizes are bounded whatever the run's size:
bars closer than a pixel are merged, scatter points are de-duplicated on a pixel grid.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

KEY_COLOURS = ("#3b7dd8", "#2f9e74", "#8a5cd1", "#c27c0e", "#1c9bb0", "#b4487f")
TYPE_COLOURS = {"ok": "#3b7dd8", "fail": "#8c8c8c", "info": "#d08a00"}
VIOLATION = "#d62828"
FAULT_FILL = "#f2b134"
PLOT_W = 1000  # px of the time axis
LEFT = 86  # px for lane labels / y ticks
RIGHT = 16
MAX_BARS = 20_000  # hard cap on drawn hold rectangles
MAX_POINTS = 12_000  # hard cap on drawn scatter points


@dataclass(slots=True)
class Fault:
    """A shaded period: a nemesis fault from its start to its stop (``end`` None: never healed)."""

    name: str
    start: int  # ns
    end: int | None
    detail: str = ""


@dataclass(slots=True)
class Bar:
    """One hold drawn on a lane; ``end`` None means never released (drawn to the end)."""

    start: int  # ns
    end: int | None
    key: str
    bad: bool = False
    title: str = ""


def fmt(v: float) -> str:
    """Short coordinates: sizes stay small with many elements."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, n: int = 8) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def tick_label(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"


def key_colours(keys: Sequence[str]) -> dict[str, str]:
    return {k: KEY_COLOURS[i % len(KEY_COLOURS)] for i, k in enumerate(keys)}


def key_colour(key: str, colours: dict[str, str]) -> str:
    # crc32, not hash(): str hashes change per process and the page should not
    return colours.get(key) or KEY_COLOURS[zlib.crc32(key.encode()) % len(KEY_COLOURS)]


def _defs() -> str:
    # Hatches mark open-ended holds: the lock left its owner at an unknown moment.
    pat = (
        '<pattern id="{id}" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="{bg}"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="{fg}" stroke-width="3"/></pattern>'
    )
    return (
        "<defs>"
        + pat.format(id="hatch-open", bg="#e4e8ee", fg="#9aa5b4")
        + pat.format(id="hatch-bad", bg="#f7c5c5", fg=VIOLATION)
        + "</defs>"
    )


def _fault_bands(
    faults: Sequence[Fault], x_of, t_end: int, top: float, height: float, label_y: float
) -> list[str]:
    """Shaded fault periods across the plot, labels staggered on up to three rows."""
    out: list[str] = []
    row_end = [-1e9, -1e9, -1e9]
    for f in faults:
        if f.start > t_end:
            continue  # after the plotted span
        x1 = x_of(f.start)
        x2 = x_of(f.end if f.end is not None else t_end)
        w = max(x2 - x1, 1.5)
        tip = f"{f.name}: {f.detail}" if f.detail else f.name
        if f.end is None:
            tip += " (never healed)"
        out.append(
            f'<rect class="fault" x="{fmt(x1)}" y="{fmt(top)}" width="{fmt(w)}" '
            f'height="{fmt(height)}" fill="{FAULT_FILL}" fill-opacity="0.2">'
            f"<title>{escape(tip)}</title></rect>"
        )
        row = next((i for i, e in enumerate(row_end) if e < x1), None)
        if row is None:
            continue  # too crowded to label; the band keeps its tooltip
        row_end[row] = x1 + 7 * len(f.name) + 6
        out.append(
            f'<text class="fault-label" x="{fmt(x1 + 2)}" y="{fmt(label_y + 11 * row)}" '
            f'font-size="10" fill="#8a5a00">{escape(f.name)}</text>'
        )
    return out


def _time_axis(x_of, t_end_s: float, y: float, scale_ns: float) -> list[str]:
    out = [f'<line x1="{LEFT}" y1="{fmt(y)}" x2="{LEFT + PLOT_W}" y2="{fmt(y)}" stroke="#555"/>']
    for t in nice_ticks(0, t_end_s):
        x = x_of(t * scale_ns)
        out.append(
            f'<line x1="{fmt(x)}" y1="{fmt(y)}" x2="{fmt(x)}" y2="{fmt(y + 4)}" stroke="#555"/>'
            f'<text x="{fmt(x)}" y="{fmt(y + 15)}" font-size="10" text-anchor="middle">'
            f"{tick_label(t)}</text>"
        )
    out.append(
        f'<text x="{LEFT + PLOT_W // 2}" y="{fmt(y + 29)}" font-size="11" '
        f'text-anchor="middle">time since run start (s)</text>'
    )
    return out


def timeline(
    lanes: Sequence[tuple[str, Sequence[Bar]]],
    faults: Sequence[Fault],
    t_end: int,
    keys: Sequence[str],
) -> tuple[Markup, int, bool]:
    """One lane per process, a bar per hold; returns the SVG, how many bars were merged, and
    whether lanes were left out to keep under MAX_BARS rectangles.

    Non-violating bars closer than a pixel to the previous one on the same key are merged
    into one rectangle, so a lane never holds more rectangles than it has pixels.
    """
    t_end = max(t_end, 1)
    colours = key_colours(keys)
    lane_h = 14 if len(lanes) <= 30 else 9
    gap = 3
    top = 40
    height = top + len(lanes) * (lane_h + gap) + 40
    width = LEFT + PLOT_W + RIGHT

    def x_of(t: float) -> float:
        return LEFT + PLOT_W * min(max(t, 0), t_end) / t_end

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        _defs(),
    ]
    plot_h = len(lanes) * (lane_h + gap)
    out += _fault_bands(faults, x_of, t_end, top - 4, plot_h + 4, 12)
    merged = drawn = 0
    capped = False
    for i, (label, bars) in enumerate(lanes):
        y = top + i * (lane_h + gap)
        out.append(
            f'<text x="{LEFT - 6}" y="{fmt(y + lane_h - 2)}" font-size="10" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<line x1="{LEFT}" y1="{fmt(y + lane_h / 2)}" x2="{LEFT + PLOT_W}" '
            f'y2="{fmt(y + lane_h / 2)}" stroke="#eef0f3"/>'
        )
        runs, special, n_merged = _merge(bars, x_of, t_end)
        merged += n_merged
        if drawn + len(runs) + len(special) > MAX_BARS:
            capped = True
            continue
        for x1, x2, n, key in runs:
            tip = f"<title>{n} holds of {escape(key)}</title>" if n > 1 else ""
            out.append(
                f'<rect x="{fmt(x1)}" y="{fmt(y)}" width="{fmt(max(x2 - x1, 0.8))}" '
                f'height="{lane_h}" fill="{key_colour(key, colours)}">{tip}</rect>'
            )
        for b, x1, x2 in special:  # violating and open bars go on top of the rest
            if b.bad:
                fill = "url(#hatch-bad)" if b.end is None else VIOLATION
            else:
                fill = "url(#hatch-open)"
            out.append(
                f'<rect class="hold {"violation" if b.bad else "open"}" x="{fmt(x1)}" '
                f'y="{fmt(y)}" width="{fmt(max(x2 - x1, 1.5))}" height="{lane_h}" '
                f'fill="{fill}" stroke="{VIOLATION if b.bad else "#9aa5b4"}" '
                f'stroke-width="0.6"><title>{escape(b.title)}</title></rect>'
            )
        drawn += len(runs) + len(special)
    out += _time_axis(x_of, t_end / 1e9, top + plot_h + 4, 1e9)
    out.append("</svg>")
    return Markup("".join(out)), merged, capped


def _merge(
    bars: Sequence[Bar], x_of, t_end: int
) -> tuple[list[tuple[float, float, int, str]], list[tuple[Bar, float, float]], int]:
    """Plain bars as merged runs (x1, x2, count, key); violating or open bars kept apart."""
    runs: list[tuple[float, float, int, str]] = []
    special: list[tuple[Bar, float, float]] = []
    merged = 0
    cur: list | None = None  # [x1, x2, count, key] of the run being extended
    for b in sorted(bars, key=lambda b: b.start):
        x1 = x_of(b.start)
        x2 = x_of(b.end if b.end is not None else t_end)
        if b.bad or b.end is None:
            special.append((b, x1, x2))
        elif cur is not None and b.key == cur[3] and x1 - cur[1] < 1.0:
            cur[1] = max(cur[1], x2)
            cur[2] += 1
            merged += 1
        else:
            if cur is not None:
                runs.append(tuple(cur))
            cur = [x1, x2, 1, b.key]
    if cur is not None:
        runs.append(tuple(cur))
    return runs, special, merged


def scatter(
    points: Sequence[Sequence],
    faults: Sequence[Fault],
    t_end_s: float,
    offset_s: float = 0.0,
) -> tuple[Markup, dict[str, object]]:
    """Acquire latency over time: ``points`` are ``[t_s, latency_ms, type]``, ``t_s`` counted
    from ``offset_s`` after run start.

    A log y axis is used when latencies span more than two decades. Points falling on the same
    2-px cell are drawn once. Returns the SVG and facts for the caption (log, drawn, sampled).
    """
    plot_h = 240
    top = 30
    width = LEFT + PLOT_W + RIGHT
    height = top + plot_h + 40
    good = [
        (float(p[0]) + offset_s, float(p[1]), str(p[2]) if len(p) > 2 else "ok")
        for p in points
        if isinstance(p, list | tuple) and len(p) >= 2 and _finite(p[0]) and _finite(p[1])
    ]
    t_end_s = max([t_end_s, *(p[0] for p in good[-1:])] + [1e-9])
    lat = [p[1] for p in good]
    lo_v = min((v for v in lat if v > 0), default=0.1)
    hi_v = max(lat, default=1.0)
    log = bool(lat) and hi_v / max(lo_v, 1e-9) > 100
    if log:  # from the decade below the lowest point: the lowest tick is labelled where it is
        lo_v = 10.0 ** math.floor(math.log10(lo_v))
        lo_y, hi_y = math.log10(lo_v), math.log10(max(hi_v, lo_v * 10))
    else:
        lo_y, hi_y = 0.0, max(hi_v, 1e-6) * 1.05

    def y_of(v: float) -> float:
        if log:
            v = math.log10(max(v, lo_v))
        return top + plot_h - plot_h * (v - lo_y) / (hi_y - lo_y)

    def x_of(t_ns: float) -> float:
        return LEFT + PLOT_W * min(max(t_ns / 1e9, 0), t_end_s) / t_end_s

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart latency" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">'
    ]
    out += _fault_bands(faults, x_of, int(t_end_s * 1e9), top, plot_h, 12)
    # y axis and grid
    ticks = (
        [10.0**e for e in range(math.floor(lo_y), math.ceil(hi_y) + 1)]
        if log
        else nice_ticks(lo_y, hi_y, 5)
    )
    for v in ticks:
        y = y_of(v)
        if not top - 0.5 <= y <= top + plot_h + 0.5:
            continue
        out.append(
            f'<line x1="{LEFT}" y1="{fmt(y)}" x2="{LEFT + PLOT_W}" y2="{fmt(y)}" '
            f'stroke="#eef0f3"/><text x="{LEFT - 6}" y="{fmt(y + 3)}" font-size="10" '
            f'text-anchor="end">{tick_label(v)}</text>'
        )
    axis = "acquire latency (ms, log)" if log else "acquire latency (ms)"
    out.append(
        f'<text x="14" y="{top + plot_h // 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h // 2})">{axis}</text>'
    )
    seen: set[tuple[int, int, str]] = set()
    dots: list[str] = []
    for t, v, typ in good:
        x, y = x_of(t * 1e9), y_of(v)
        cell = (int(x / 2), int(y / 2), typ)
        if cell in seen:
            continue
        seen.add(cell)
        dots.append(
            f'<circle cx="{fmt(x)}" cy="{fmt(y)}" r="1.8" fill="{TYPE_COLOURS.get(typ, "#555")}"/>'
        )
    sampled = len(dots) > MAX_POINTS
    if sampled:
        step = len(dots) / MAX_POINTS
        dots = [dots[int(i * step)] for i in range(MAX_POINTS)]
    out += dots
    out += _time_axis(x_of, t_end_s, top + plot_h, 1e9)
    ly = top + plot_h + 25  # the legend shares the axis-title row, clear of fault labels
    for i, (typ, colour) in enumerate(TYPE_COLOURS.items()):
        out.append(
            f'<circle cx="{LEFT + i * 55}" cy="{ly}" r="4" fill="{colour}"/>'
            f'<text x="{LEFT + i * 55 + 7}" y="{ly + 4}" font-size="10">{typ}</text>'
        )
    out.append("</svg>")
    facts: dict[str, object] = {
        "log": log,
        "points": len(good),
        "drawn": len(dots),
        "sampled": sampled,
    }
    return Markup("".join(out)), facts


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# --- over time: lines per time bucket -------------------------------------------------------


def _y_axis(
    lo: float, hi: float, log: bool, top: float, plot_h: float, label: str
) -> tuple[list[str], object]:
    """Grid, tick labels and title of a y axis; returns the parts and y_of(value)."""
    if log:  # from the decade below ``lo``: the lowest tick is labelled where it is
        lo = 10.0 ** math.floor(math.log10(lo))
        lo_y, hi_y = math.log10(lo), math.log10(max(hi, lo * 10))
    else:
        lo_y, hi_y = 0.0, max(hi, 1e-6) * 1.08

    def y_of(v: float) -> float:
        if log:
            v = math.log10(max(v, lo))
        return top + plot_h - plot_h * (v - lo_y) / (hi_y - lo_y)

    ticks = (
        [10.0**e for e in range(math.floor(lo_y), math.ceil(hi_y) + 1)]
        if log
        else nice_ticks(lo_y, hi_y, 4)
    )
    out = []
    for v in ticks:
        y = y_of(v)
        if not top - 0.5 <= y <= top + plot_h + 0.5:
            continue
        out.append(
            f'<line x1="{LEFT}" y1="{fmt(y)}" x2="{LEFT + PLOT_W}" y2="{fmt(y)}" '
            f'stroke="#eef0f3"/><text x="{LEFT - 6}" y="{fmt(y + 3)}" font-size="10" '
            f'text-anchor="end">{tick_label(v)}</text>'
        )
    mid = top + plot_h // 2
    out.append(
        f'<text x="14" y="{fmt(mid)}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {fmt(mid)})">{escape(label)}</text>'
    )
    return out, y_of


def lines(
    named: Sequence[tuple[str, str, Sequence[float | None]]],
    width_s: float,
    faults: Sequence[Fault],
    t_end_s: float,
    label: str,
    *,
    css: str,
    log_ok: bool = False,
) -> Markup:
    """Step lines over time buckets of ``width_s`` seconds: ``named`` is (name, colour, values);
    None values leave a gap. Fault periods shaded. A log axis when ``log_ok`` and values span
    more than two decades."""
    plot_h, top = 170, 26
    width = LEFT + PLOT_W + RIGHT
    height = top + plot_h + 40
    t_end_s = max(t_end_s, width_s * max((len(v) for _, _, v in named), default=1), 1e-9)
    vals = [x for _, _, v in named for x in v if x is not None]
    pos = [x for x in vals if x > 0]
    hi = max(vals, default=1.0)
    lo = min(pos, default=0.1)
    log = log_ok and bool(pos) and hi / lo > 100

    def x_of(t_ns: float) -> float:
        return LEFT + PLOT_W * min(max(t_ns / 1e9, 0), t_end_s) / t_end_s

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">'
    ]
    out += _fault_bands(faults, x_of, int(t_end_s * 1e9), top, plot_h, 12)
    axis, y_of = _y_axis(lo if log else 0.0, hi, log, top, plot_h, label)
    out += axis
    for name, colour, values in named:
        path: list[str] = []
        pen_up = True
        for i, v in enumerate(values):
            if v is None:
                pen_up = True
                continue
            x1, x2 = x_of(i * width_s * 1e9), x_of((i + 1) * width_s * 1e9)
            y = fmt(y_of(v))  # type: ignore[operator]
            path.append(f"{'M' if pen_up else 'L'}{fmt(x1)} {y}H{fmt(x2)}")
            pen_up = False
        if path:
            out.append(
                f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="1.6">'
                f"<title>{escape(name)}</title></path>"
            )
    out += _time_axis(x_of, t_end_s, top + plot_h, 1e9)
    ly = top + plot_h + 25
    for i, (name, colour, _) in enumerate(named):
        x = LEFT + i * 120
        out.append(
            f'<line x1="{x - 5}" y1="{ly}" x2="{x + 5}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="3"/><text x="{x + 9}" y="{ly + 4}" font-size="10">{escape(name)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


# --- one violation, zoomed ------------------------------------------------------------------

MARK_COLOURS = {
    "write": "#2f9e74",
    "stale": VIOLATION,
    "rejected": "#555",
    "unknown": "#d08a00",
    "release-fail": "#555",
}


LABEL_ROWS = 3  # rows of mark labels under each zoom lane
CHAR_W = 6.0  # px a character of a 10 px label takes, about


def _label_w(text: str) -> float:
    return len(text) * CHAR_W + 4


class _Rows:
    """Labels laid out on a few rows without overprinting: each goes on the first row where
    it meets no label placed before it (in any order); None when every row is taken there
    (the mark keeps its tooltip)."""

    def __init__(self, n: int, lo: float, hi: float) -> None:
        self.taken: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self.lo, self.hi = lo, hi

    def place(self, x: float, w: float, anchor: str = "middle") -> tuple[int, float] | None:
        """The row and the clamped x of a label of width ``w`` at ``x``."""
        if anchor == "middle":
            x = min(max(x, self.lo + w / 2), self.hi - w / 2)
            left = x - w / 2
        else:  # "start"
            x = min(x, self.hi - w)
            left = x
        for i, row in enumerate(self.taken):
            if all(left >= b or left + w <= a for a, b in row):
                row.append((left, left + w))
                return i, x
        return None


def _clusters(marks: list, x_of) -> list[tuple[list, float]]:
    """Marks of one kind closer than their labels' width run together: one label each
    ("w275…w293 (12)"), at the run's middle."""
    out: list[tuple[list, float]] = []
    for m in sorted(marks, key=lambda m: m.t):
        x = x_of(m.t)
        if out:
            group, _ = out[-1]
            last = group[-1]
            if last.kind == m.kind and x - x_of(last.t) < _label_w(last.label) / 2 + 4:
                group.append(m)
                continue
        out.append(([m], x))
    return [(g, (x_of(g[0].t) + x_of(g[-1].t)) / 2) for g, _ in out]


def _cluster_label(group: list) -> str:
    if len(group) == 1:
        return group[0].label
    first, last = group[0].label, group[-1].label
    return f"{first}…{last} ({len(group)})" if first != last else f"{first} ×{len(group)}"


def zoom(story) -> Markup:  # a reports.story.Story
    """Both holders' lanes over the violation's window: holds, writes with their fence tokens,
    failed releases, fault periods and lease expiries. Labels never overprint: the fault and
    lease labels share rows above the lanes, the marks' labels rows under their lane, marks
    of one kind close together share one label, and a label with no room left is dropped
    (its mark keeps the tooltip)."""
    lo, hi = story.lo, max(story.hi, story.lo + 1)
    plot_w = 760
    lane_h, row_h = 18, 11
    # room for the longest lane label, 11 px text ending 6 px before the plot ("client 100014")
    widest = max((len(lane.label) for lane in story.lanes), default=0)
    left = max(70, round(widest * CHAR_W * 1.1) + 8)
    gap = 18 + row_h * LABEL_ROWS  # the label rows, and air before the next lane
    head_rows = 2 if not story.lines else 3
    top = 8 + row_h * head_rows + 8
    width = left + plot_w + 20
    height = top + len(story.lanes) * (lane_h + gap) + 40

    def x_of(t: float) -> float:
        return left + plot_w * (min(max(t, lo), hi) - lo) / (hi - lo)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart zoom" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        _defs(),
    ]
    plot_h = len(story.lanes) * (lane_h + gap)
    head = _Rows(head_rows, 0, width)
    for f in story.faults:
        x1, x2 = x_of(f.start), x_of(f.end if f.end is not None else hi)
        out.append(
            f'<rect class="fault" x="{fmt(x1)}" y="{top - 6}" width="{fmt(max(x2 - x1, 1.5))}" '
            f'height="{fmt(plot_h + 6)}" fill="{FAULT_FILL}" fill-opacity="0.22">'
            f"<title>{escape(f.text())}</title></rect>"
        )
        spot = head.place(x1 + 2, _label_w(f.name), "start")
        if spot is not None:
            out.append(
                f'<text class="fault-label" x="{fmt(spot[1])}" y="{8 + row_h * (spot[0] + 1)}" '
                f'font-size="10" fill="#8a5a00">{escape(f.name)}</text>'
            )
    for t, label in story.lines:
        x = x_of(t)
        out.append(
            f'<line x1="{fmt(x)}" y1="{top - 8}" x2="{fmt(x)}" y2="{fmt(top + plot_h)}" '
            f'stroke="#7048e8" stroke-dasharray="4 3"><title>{escape(label)}</title></line>'
        )
        spot = head.place(x + 3, _label_w(label), "start")
        if spot is not None:
            out.append(
                f'<text class="line-label" x="{fmt(spot[1])}" '
                f'y="{8 + row_h * (spot[0] + 1)}" font-size="10" fill="#7048e8">'
                f"{escape(label)}</text>"
            )
    for i, lane in enumerate(story.lanes):
        y = top + i * (lane_h + gap)
        out.append(
            f'<text x="{left - 6}" y="{fmt(y + lane_h - 4)}" font-size="11" '
            f'text-anchor="end">{escape(lane.label)}</text>'
        )
        for start, end, bad, open_, title in lane.bars:
            x1, x2 = x_of(start), x_of(end)
            if bad:
                fill = "url(#hatch-bad)" if open_ else VIOLATION
            else:
                fill = "url(#hatch-open)" if open_ else KEY_COLOURS[0]
            out.append(
                f'<rect class="zhold{" bad" if bad else ""}" x="{fmt(x1)}" y="{y}" '
                f'width="{fmt(max(x2 - x1, 1.5))}" height="{lane_h}" fill="{fill}" '
                f'fill-opacity="{0.9 if bad else 0.45}"><title>{escape(title)}</title></rect>'
            )
        for m in lane.marks:
            x = x_of(m.t)
            colour = MARK_COLOURS.get(m.kind, "#555")
            shape = (
                f'<path d="M{fmt(x - 4)} {y - 1}L{fmt(x + 4)} {y + 7}M{fmt(x + 4)} {y - 1}'
                f'L{fmt(x - 4)} {y + 7}" stroke="{colour}" stroke-width="2"/>'
                if m.kind == "release-fail"
                else f'<path d="M{fmt(x)} {y + lane_h}l-4 7h8z" fill="{colour}"/>'
            )
            out.append(
                f'<g class="mark {m.kind}">{shape}<title>{escape(m.title or m.label)}</title></g>'
            )
        rows = _Rows(LABEL_ROWS, left - 30, left + plot_w + 20)
        # the story's own moments first (stale, rejected, failed releases), then the rest
        first = ("stale", "release-fail", "rejected", "unknown")
        groups = sorted(
            _clusters(lane.marks, x_of),
            key=lambda g: (g[0][0].kind not in first, g[1]),
        )
        for group, x in groups:
            label = _cluster_label(group)
            spot = rows.place(x, _label_w(label))
            if spot is None:
                continue
            kind = group[0].kind
            colour = MARK_COLOURS.get(kind, "#555")
            out.append(
                f'<text class="mark-label {kind}" x="{fmt(spot[1])}" '
                f'y="{fmt(y + lane_h + 7 + row_h * (spot[0] + 1))}" font-size="10" '
                f'text-anchor="middle" fill="{colour}">{escape(label)}'
                f"<title>{escape('; '.join(m.title or m.label for m in group[:20]))}</title>"
                "</text>"
            )
    axis_y = top + plot_h + 6
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#555"/>'
    )
    ticks = nice_ticks(lo / 1e9, hi / 1e9, 6)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 3
    while decimals < 6 and abs(round(step * 10**decimals) - step * 10**decimals) > 1e-6:
        decimals += 1  # a step of 0.25 needs two
    for t in ticks:
        x = x_of(t * 1e9)
        if left - 0.5 <= x <= left + plot_w + 0.5:
            out.append(
                f'<line x1="{fmt(x)}" y1="{axis_y}" x2="{fmt(x)}" y2="{axis_y + 4}" '
                f'stroke="#555"/><text x="{fmt(x)}" y="{axis_y + 15}" font-size="10" '
                f'text-anchor="middle">{t:.{decimals}f}</text>'
            )
    out.append(
        f'<text x="{left + plot_w // 2}" y="{axis_y + 27}" font-size="10" '
        f'text-anchor="middle">time since run start (s)</text></svg>'
    )
    return Markup("".join(out))


def strip(
    ticks: Sequence[tuple[int, str]], faults: Sequence[Fault], t_end: int, label: str
) -> Markup:
    """Moments on one lane across the whole run (lost updates, double-executed slots)."""
    t_end = max(t_end, 1)
    top, lane_h = 26, 22
    width = LEFT + PLOT_W + RIGHT
    height = top + lane_h + 40

    def x_of(t: float) -> float:
        return LEFT + PLOT_W * min(max(t, 0), t_end) / t_end

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart strip" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">'
    ]
    out += _fault_bands(faults, x_of, t_end, top, lane_h, 12)
    out.append(
        f'<text x="{LEFT - 6}" y="{top + 15}" font-size="10" text-anchor="end">'
        f"{escape(label)}</text>"
    )
    seen: set[int] = set()
    for t, title in ticks:
        x = x_of(t)
        if int(x) in seen:
            continue
        seen.add(int(x))
        out.append(
            f'<rect class="tick" x="{fmt(x - 1)}" y="{top + 2}" width="2" height="{lane_h - 4}" '
            f'fill="{VIOLATION}"><title>{escape(title)}</title></rect>'
        )
    out += _time_axis(x_of, t_end / 1e9, top + lane_h + 2, 1e9)
    out.append("</svg>")
    return Markup("".join(out))
