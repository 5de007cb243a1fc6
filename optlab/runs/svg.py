"""A small SVG writer for the reports' charts: line charts (lines, dots, filled bands) and dot
plots, with real text (titles, axis labels, ticks, legends) and byte-stable output: the same
figure always gives the same bytes (fixed number formatting, no ids from counters or clocks,
no timestamps), so reports diff cleanly. No plotting library: this is all the charts need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np

from optlab.runs.axes import log_ticks, nice_ticks, outlier_cap, tick_labels
from optlab.runs.series import downsample

WIDTH = 760
PLOT_HEIGHT = 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 64, 16, 44
AXIS_SPACE = 44  # below the plot: tick labels and the x label
LEGEND_ROW = 18
LEGEND_ENTRY = 180  # width of one legend entry; the legend wraps into as many columns as fit
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
MAX_POINTS = 600  # per line: more than the pixels across the plot only adds bytes


@dataclass
class Line:
    xs: Sequence[float]
    ys: Sequence[float]
    color: str  # #rrggbb
    label: str = ""  # the legend's entry ("" for none)
    width: float = 1.6
    opacity: float = 1.0
    dots: bool = False  # a dot at each point (per-epoch values)
    joined: bool = True  # a line through the points


@dataclass
class Area:
    """A filled band between two lines (over seeds: mean ± std, min–max)."""

    xs: Sequence[float]
    lower: Sequence[float]
    upper: Sequence[float]
    color: str
    opacity: float = 0.2


@dataclass
class Figure:
    title: str
    x_label: str
    y_label: str
    lines: list[Line] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)
    log_y: bool = False
    note: str = ""  # under the title: what lines and bands are
    clip_outliers: bool = True
    # The x axis's ticks as (position, label) when the positions are not the values themselves:
    # log10 of swept learning rates, the index of a swept name.
    x_ticks: Sequence[tuple[float, str]] = ()


def num(value: float) -> str:
    """Coordinates with two decimals: enough for a screen, stable across platforms."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text(x: float, y: float, content: str, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{num(x)}" y="{num(y)}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f"{escape(content)}</text>")



def _svg_head(width: int, height: int, title: str, left: float) -> list[str]:
    """Every chart's opening: the svg element, its accessible title, a white page, the heading."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _text(left, 22, title, 15, extra=' font-weight="bold"'),
    ]

def _legend(entries: list[tuple[str, str]], top: float, width: int) -> tuple[list[str], float]:
    """Legend entries in rows under the plot, as many columns as fit: 64 runs fold into 16 rows
    of 4 rather than one unreadable line. Returns the elements and the height used."""
    if not entries:
        return [], 0.0
    columns = max(1, (width - MARGIN_LEFT) // LEGEND_ENTRY)
    out = []
    longest = max(10, (LEGEND_ENTRY - 24) // 6)  # about 6 px per character at 11 px
    for i, (label, color) in enumerate(entries):
        x = MARGIN_LEFT + (i % columns) * LEGEND_ENTRY
        y = top + (i // columns) * LEGEND_ROW
        short = label if len(label) <= longest else label[: longest - 1] + "…"
        out.append(f'<rect x="{num(x)}" y="{num(y - 9)}" width="12" height="10" fill="{color}"/>')
        if short == label:
            out.append(_text(x + 17, y, label, 11))
        else:  # the full name as a tooltip
            out.append(f'<text x="{num(x + 17)}" y="{num(y)}" font-size="11"><title>{escape(label)}</title>'
                       f"{escape(short)}</text>")
    rows = math.ceil(len(entries) / columns)
    return out, rows * LEGEND_ROW + 6


def _finite_pairs(xs: Sequence[float], ys: Sequence[float], log_y: bool) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(xs), len(ys))
    x = np.asarray(xs[:n], dtype=np.float64)
    y = np.asarray(ys[:n], dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if log_y:
        keep &= y > 0
    return x[keep], y[keep]


class _Scale:
    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool = False) -> None:
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if not hi > lo:
            pad = 0.5 if log else (abs(lo) * 0.1 or 1.0)
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.start, self.end, self.log = lo, hi, start, end, log

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.log10(values) if self.log else values
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS points, each stride's min and max kept so spikes survive."""
    if len(x) <= MAX_POINTS:
        return x, y
    dx, dy = downsample(x.tolist(), y.tolist(), MAX_POINTS)
    return np.asarray(dx), np.asarray(dy)


def _path(px: np.ndarray, py: np.ndarray) -> str:
    return "M" + " L".join(f"{num(a)} {num(b)}" for a, b in zip(px, py, strict=True))


def line_chart(fig: Figure, width: int = WIDTH) -> str:
    """The figure as an SVG document (a string ending in a newline)."""
    log_y = fig.log_y
    xs_all: list[np.ndarray] = []
    ys_all: list[np.ndarray] = []
    for line in fig.lines:
        x, y = _finite_pairs(line.xs, line.ys, log_y)
        xs_all.append(x)
        ys_all.append(y)
    for area in fig.areas:
        for ys in (area.lower, area.upper):
            x, y = _finite_pairs(area.xs, ys, log_y)
            xs_all.append(x)
            ys_all.append(y)
    xv = np.concatenate(xs_all) if xs_all else np.array([])
    yv = np.concatenate(ys_all) if ys_all else np.array([])
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top = MARGIN_TOP + (14 if fig.note else 0)
    bottom = top + PLOT_HEIGHT
    notes = [fig.note] if fig.note else []
    clipped = 0
    if len(yv):
        y_lo, y_hi = float(yv.min()), float(yv.max())
        cap = outlier_cap(yv) if fig.clip_outliers and not log_y else None
        if cap is not None:  # a diverged run's spike would flatten every other run
            clipped = int((yv > cap).sum())
            y_hi = cap
        x_lo, x_hi = float(xv.min()), float(xv.max())
    else:
        y_lo, y_hi, x_lo, x_hi = (1.0, 10.0, 0.0, 1.0) if log_y else (0.0, 1.0, 0.0, 1.0)
    if log_y and y_lo <= 0:
        y_lo = y_hi / 10
    if y_hi > y_lo:  # a little room above and below the data, so no line runs along the frame
        if log_y:
            pad = (y_hi / y_lo) ** 0.04
            y_lo, y_hi = y_lo / pad, y_hi * pad
        else:
            pad = 0.04 * (y_hi - y_lo)
            y_lo, y_hi = y_lo - pad, y_hi + pad
    sx = _Scale(x_lo, x_hi, left, right)
    sy = _Scale(y_lo, y_hi, bottom, top, log=log_y)
    if clipped:
        notes.append(f"{clipped} value{'s' if clipped > 1 else ''} above the scale (outliers of a diverging run)")
    if log_y:
        notes.append("log scale")

    entries: list[tuple[str, str]] = []
    for line in fig.lines:
        if line.label and all(label != line.label for label, _ in entries):
            entries.append((line.label, line.color))
    legend_top = bottom + AXIS_SPACE + 8
    legend, legend_height = _legend(entries, legend_top + 10, width)
    height = int(legend_top + legend_height + 8)

    out = _svg_head(width, height, fig.title, left)
    if notes:
        out.append(_text(left, 38, " · ".join(notes), 11, extra=' fill="#555555"'))
    # The clip keeps clamped outliers and bands inside the plot; its id is fixed, and each SVG
    # is a document of its own (inlined in HTML, each chart sits in its own <svg> scope too).
    clip_id = "plot-" + "".join(c if c.isalnum() else "-" for c in fig.title.lower())[:40]
    out.append(f'<defs><clipPath id="{clip_id}"><rect x="{left}" y="{num(top)}" width="{right - left}" '
               f'height="{PLOT_HEIGHT}"/></clipPath></defs>')
    out += _axes(sx, sy, left, right, top, bottom, log_y, fig)
    out.append(f'<g clip-path="url(#{clip_id})">')
    limit_lo, limit_hi = top - 20, bottom + 20  # clamp, so every coordinate stays finite and small
    for area in fig.areas:
        x, lo = _finite_pairs(area.xs, area.lower, log_y)
        x2, hi = _finite_pairs(area.xs, area.upper, log_y)
        if len(x) < 2 or len(x) != len(x2):
            continue
        px = sx(x)
        plo = np.clip(sy(lo), limit_lo, limit_hi)
        phi = np.clip(sy(hi), limit_lo, limit_hi)
        points = _path(np.concatenate([px, px[::-1]]), np.concatenate([phi, plo[::-1]])) + " Z"
        out.append(f'<path d="{points}" fill="{area.color}" fill-opacity="{num(area.opacity)}" stroke="none"/>')
    for line in fig.lines:
        x, y = _finite_pairs(line.xs, line.ys, log_y)
        if not len(x):
            continue
        if line.joined:
            x, y = _thin(x, y)
        px, py = sx(x), np.clip(sy(y), limit_lo, limit_hi)
        opacity = "" if line.opacity >= 1 else f' stroke-opacity="{num(line.opacity)}"'
        # The legend's entry names the series it draws (tests and curious readers count them).
        series = f' data-series="{escape(line.label, {chr(34): "&quot;"})}"' if line.label else ""
        if line.joined and len(x) > 1:
            out.append(f'<path{series} d="{_path(px, py)}" fill="none" stroke="{line.color}" '
                       f'stroke-width="{num(line.width)}" stroke-linejoin="round"{opacity}/>')
            series = ""
        if line.dots or len(x) == 1:
            fill = "" if line.opacity >= 1 else f' fill-opacity="{num(line.opacity)}"'
            out.append(f'<g{series} fill="{line.color}"{fill}>' + "".join(
                f'<circle cx="{num(a)}" cy="{num(b)}" r="2.8"/>' for a, b in zip(px, py, strict=True)) + "</g>")
    out.append("</g>")
    out += legend
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _axes(sx: _Scale, sy: _Scale, left: float, right: float, top: float, bottom: float,
          log_y: bool, fig: Figure) -> list[str]:
    out = [f'<rect x="{left}" y="{num(top)}" width="{num(right - left)}" height="{PLOT_HEIGHT}" '
           'fill="none" stroke="#999999"/>']
    if log_y:
        ticks = log_ticks(sy.lo, sy.hi, 6)
        labels = tick_labels(ticks)
    else:
        ticks, step = nice_ticks(sy.lo, sy.hi, 6)
        labels = tick_labels(ticks, step)
    for tick, label in zip(ticks, labels, strict=True):
        y = float(sy(np.array([tick]))[0])
        out.append(f'<line x1="{left}" y1="{num(y)}" x2="{num(right)}" y2="{num(y)}" stroke="#e5e5e5"/>')
        out.append(_text(left - 6, y + 4, label, 10, "end", ' fill="#333333"'))
    if fig.x_ticks:
        xticks, xlabels = [t for t, _ in fig.x_ticks], [label for _, label in fig.x_ticks]
    else:
        xticks, xstep = nice_ticks(sx.lo, sx.hi, 8)
        xlabels = tick_labels(xticks, xstep)
    for tick, label in zip(xticks, xlabels, strict=True):
        x = float(sx(np.array([tick]))[0])
        out.append(f'<line x1="{num(x)}" y1="{num(bottom)}" x2="{num(x)}" y2="{num(bottom + 4)}" stroke="#999999"/>')
        out.append(_text(x, bottom + 16, label, 10, "middle", ' fill="#333333"'))
    out.append(_text((left + right) / 2, bottom + 34, fig.x_label, 12, "middle"))
    middle = (top + bottom) / 2
    out.append(_text(16, middle, fig.y_label, 12, "middle", f' transform="rotate(-90 16 {num(middle)})"'))
    return out


@dataclass
class DotRow:
    label: str
    color: str
    values: list[float]  # one dot each (seeds)
    mean: float | None
    note: str = ""  # after the label, e.g. "2/3 reached"


def dot_plot(
    title: str, x_label: str, rows: list[DotRow], note: str = "", width: int = WIDTH, from_zero: bool = False
) -> str:
    """One row per configuration (in the given order: by rank), a faint dot per seed and a
    bar at the mean. `from_zero`: the axis starts at 0 (amounts, such as samples seen)."""
    label_space = 190
    left, right = label_space, width - MARGIN_RIGHT - 60
    top = MARGIN_TOP + (14 if note else 0)
    row_h = 22
    bottom = top + max(1, len(rows)) * row_h
    values = [v for r in rows for v in r.values if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if from_zero:
        lo = min(lo, 0.0)
    pad = 0.05 * (hi - lo) if hi > lo else (abs(lo) * 0.05 or 0.5)
    sx = _Scale(lo if from_zero else lo - pad, hi + pad, left, right)
    height = int(bottom + AXIS_SPACE + 8)
    out = _svg_head(width, height, title, MARGIN_LEFT)
    if note:
        out.append(_text(MARGIN_LEFT, 38, note, 11, extra=' fill="#555555"'))
    out.append(f'<rect x="{left}" y="{num(top)}" width="{right - left}" height="{num(bottom - top)}" '
               'fill="none" stroke="#999999"/>')
    xticks, xstep = nice_ticks(sx.lo, sx.hi, 7)
    for tick, text in zip(xticks, tick_labels(xticks, xstep), strict=True):
        x = float(sx(np.array([tick]))[0])
        out.append(f'<line x1="{num(x)}" y1="{num(top)}" x2="{num(x)}" y2="{num(bottom)}" stroke="#eeeeee"/>')
        out.append(_text(x, bottom + 16, text, 10, "middle", ' fill="#333333"'))
    out.append(_text((left + right) / 2, bottom + 34, x_label, 12, "middle"))
    for i, row in enumerate(rows):
        y = top + (i + 0.5) * row_h
        label = row.label if len(row.label) <= 28 else row.label[:27] + "…"
        out.append(f'<rect x="{left - label_space + 8}" y="{num(y - 5)}" width="10" height="10" fill="{row.color}"/>')
        out.append(_text(left - label_space + 24, y + 4, label, 11))
        finite = [v for v in row.values if math.isfinite(v)]
        if finite:
            xs = sx(np.asarray(finite))
            out.append(f'<g data-series="{escape(row.label, {chr(34): "&quot;"})}" fill="{row.color}" '
                       'fill-opacity="0.45">' + "".join(
                f'<circle cx="{num(x)}" cy="{num(y)}" r="3.5"/>' for x in xs) + "</g>")
        if row.mean is not None and math.isfinite(row.mean):
            x = float(sx(np.array([row.mean]))[0])
            out.append(f'<line x1="{num(x)}" y1="{num(y - 8)}" x2="{num(x)}" y2="{num(y + 8)}" '
                       f'stroke="{row.color}" stroke-width="3"/>')
        side = row.note or ("" if row.mean is None else f"{row.mean:.4g}")
        out.append(_text(right + 6, y + 4, side, 10, extra=' fill="#333333"'))
    out.append("</svg>")
    return "\n".join(out) + "\n"
