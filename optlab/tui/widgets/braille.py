"""Line charts drawn in Unicode braille, as rich `Text`, for the TUI's chart widget.

Pure (numpy and rich, no textual), so it is tested and timed on its own. A terminal cell
holds a braille character of 2x4 dots, so lines get twice the horizontal and four times the
vertical resolution of the cells; per-epoch values are drawn as a marker character in their
cell instead, so they read apart from the lines. Everything per point is numpy: a figure
costs a millisecond or two, not the tens of a general plotting library, which matters
because the TUI shares the CPU with the training it shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

from optlab.runs.axes import log_ticks, nice_ticks, tick_labels

# Bit of each dot of a braille cell (the character is U+2800 + bits), by [dot row][dot column]:
# Unicode numbers the dots 1-2-3 down the left column, 4-5-6 down the right, then 7 and 8.
DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
BRAILLE_BLANK = 0x2800
AXIS_STYLE = Style(dim=True)
X_LABEL_STYLE = Style(italic=True)
MAX_Y_TICKS = 5


@dataclass(frozen=True)
class Trace:
    """One series to draw: points in x order, a 256-colour code, and how to draw it."""

    xs: Sequence[float]
    ys: Sequence[float]
    color: int
    marker: str = ""  # "" joins the points with a line; a character draws each point as it
    upper: Sequence[float] | None = None  # a band from ys up to these, shaded under every line


@dataclass
class Grid:
    """The plot area, one entry per cell: braille dots, the colour of the last trace drawn
    there (-1: none), and the code point of a marker that hides the dots (0: none)."""

    bits: np.ndarray
    color: np.ndarray
    marker: np.ndarray

    def rows(self) -> list[str]:
        codes = np.where(self.bits > 0, BRAILLE_BLANK + self.bits.astype(np.uint32), ord(" "))
        codes = np.where(self.marker > 0, self.marker, codes).astype("<u4")
        # One decode for the whole grid instead of a chr() per cell.
        return [row.tobytes().decode("utf-32-le") for row in codes]


@lru_cache(maxsize=256)
def color_style(code: int) -> Style:
    # Style objects, not "color(N)" strings, so nobody parses the same style per span per frame.
    return Style(color=Color.from_ansi(code))


# ---------------------------------------------------------------- rasterising


def _points(trace: Trace, log_y: bool) -> tuple[np.ndarray, np.ndarray]:
    """The drawable points (finite; positive on a log axis), y as log10 on a log axis."""
    xs = np.asarray(trace.xs, dtype=np.float64)
    ys = np.asarray(trace.ys, dtype=np.float64)
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    keep = np.isfinite(xs) & np.isfinite(ys)
    if log_y:
        keep &= ys > 0
    xs, ys = xs[keep], ys[keep]
    return xs, (np.log10(ys) if log_y else ys)


def _band_points(trace: Trace, log_y: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A band's drawable buckets (both edges finite; positive on a log axis): xs, lower, upper."""
    xs = np.asarray(trace.xs, dtype=np.float64)
    lo = np.asarray(trace.ys, dtype=np.float64)
    hi = np.asarray(trace.upper if trace.upper is not None else (), dtype=np.float64)
    n = min(len(xs), len(lo), len(hi))
    xs, lo, hi = xs[:n], lo[:n], hi[:n]
    keep = np.isfinite(xs) & np.isfinite(lo) & np.isfinite(hi)
    if log_y:
        keep &= (lo > 0) & (hi > 0)
    xs, lo, hi = xs[keep], lo[keep], hi[keep]
    if log_y:
        lo, hi = np.log10(lo), np.log10(hi)
    return xs, lo, hi, trace.color


def _line_dots(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every dot on the straight segments between consecutive dots, all segments at once:
    each segment gets max(|dx|, |dy|) + 1 evenly spaced samples, rounded to dots."""
    if len(px) < 2:
        return px, py
    dx, dy = np.diff(px), np.diff(py)
    steps = np.maximum(np.abs(dx), np.abs(dy))
    counts = steps + 1
    segment = np.repeat(np.arange(len(steps)), counts)
    # Position of each sample within its segment: 0 .. steps.
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = offset / np.maximum(steps, 1)[segment]
    x = np.rint(px[segment] + dx[segment] * frac).astype(np.intp)
    y = np.rint(py[segment] + dy[segment] * frac).astype(np.intp)
    return x, y


def _fill_dots(
    fill: np.ndarray, fill_color: np.ndarray, px: np.ndarray, top: np.ndarray, bottom: np.ndarray, code: int
) -> None:
    """Shade the band between two edges (dot rows, per point at dot columns `px`, in x order):
    its edges solid, its inside every other dot, so it reads as a band and not a block."""
    n_rows, n_cols = fill.shape
    first, last = int(np.ceil(px[0])), int(np.floor(px[-1]))
    columns = np.arange(max(first, 0), min(last, n_cols - 1) + 1) if last >= first else np.rint(px[:1]).astype(np.intp)
    if not len(columns):
        return
    hi = np.clip(np.rint(np.interp(columns, px, top)), 0, n_rows - 1).astype(np.intp)
    lo = np.clip(np.rint(np.interp(columns, px, bottom)), 0, n_rows - 1).astype(np.intp)
    hi, lo = np.minimum(hi, lo), np.maximum(hi, lo)
    r = np.arange(n_rows)[:, None]
    inside = (r >= hi) & (r <= lo)
    pattern = (r + columns) % 2 == 0
    fill[:, columns] |= (inside & pattern) | (r == hi) | (r == lo)
    cells = inside.reshape(n_rows // 4, 4, len(columns)).any(axis=1)
    cell_rows, which = np.nonzero(cells)
    fill_color[cell_rows, columns[which] >> 1] = code


def rasterize(
    traces: Sequence[tuple[np.ndarray, np.ndarray, int, str]],
    cols: int,
    rows: int,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    fills: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = (),
) -> Grid:
    """Draw (xs, ys, colour, marker) traces, in order, on a cols x rows cell grid spanning
    the ranges (y already log10 on a log axis). Later traces win a cell's colour, and a
    marker hides the dots under it until a later line passes through the cell. `fills`
    (xs, lower, upper, colour) are shaded bands under everything: a cell a trace passes
    through shows that trace alone, so a line inside a band stays a line."""
    dots = np.zeros((rows * 4, cols * 2), dtype=np.uint8)
    fill = np.zeros((rows * 4, cols * 2), dtype=bool)
    color = np.full((rows, cols), -1, dtype=np.int16)
    fill_color = np.full((rows, cols), -1, dtype=np.int16)
    marker = np.zeros((rows, cols), dtype=np.uint32)
    (x0, x1), (y0, y1) = x_range, y_range
    sx = (cols * 2 - 1) / (x1 - x0)
    sy = (rows * 4 - 1) / (y1 - y0)
    for xs, lower, upper, code in fills:
        if len(xs):
            _fill_dots(fill, fill_color, (xs - x0) * sx, (y1 - upper) * sy, (y1 - lower) * sy, code)
    for xs, ys, code, mark in traces:
        if not len(xs):
            continue
        px = np.clip(np.rint((xs - x0) * sx), 0, cols * 2 - 1).astype(np.intp)
        py = np.clip(np.rint((y1 - ys) * sy), 0, rows * 4 - 1).astype(np.intp)  # row 0 is the top
        if mark:
            marker[py >> 2, px >> 1] = ord(mark)
            color[py >> 2, px >> 1] = code
            continue
        px, py = _line_dots(px, py)
        dots[py, px] = 1
        color[py >> 2, px >> 1] = code
        marker[py >> 2, px >> 1] = 0
    bits = np.tensordot(dots.reshape(rows, 4, cols, 2), DOT_BITS, axes=([1, 3], [0, 1])).astype(np.uint8)
    if fills:
        shade = np.tensordot(fill.reshape(rows, 4, cols, 2), DOT_BITS, axes=([1, 3], [0, 1])).astype(np.uint8)
        drawn = color >= 0
        bits = np.where(drawn, bits, shade)
        color = np.where(drawn, color, fill_color)
    return Grid(bits, color, marker)


def _span(lo: float, hi: float, log_y: bool) -> tuple[float, float]:
    """A range with room in it: a flat series (or one point) sits in the middle."""
    if hi > lo:
        return lo, hi
    pad = 0.5 if log_y else (abs(lo) * 0.1 or 1.0)  # log: half a decade each way
    return lo - pad, hi + pad


# ---------------------------------------------------------------- the figure


def _x_ticks(
    lo: float, hi: float, first_col: int, cols: int, limit: int
) -> list[tuple[int, int, str]]:
    """(tick column, label start, label) of as many x ticks as fit in columns [0, limit),
    labels centred under their ticks and two spaces apart."""
    for max_count in range(min(8, max(2, cols // 4)), 0, -1):
        ticks, step = nice_ticks(lo, hi, max_count)
        placed: list[tuple[int, int, str]] = []
        end = -2
        for tick, label in zip(ticks, tick_labels(ticks, step), strict=True):
            col = first_col + int(round((tick - lo) * (cols * 2 - 1) / (hi - lo))) // 2
            if col >= limit:
                continue  # under the x label
            start = min(max(0, col - (len(label) - 1) // 2), limit - len(label))
            if start < end + 2:
                break
            placed.append((col, start, label))
            end = start + len(label)
        else:
            return placed
    return []


def render(
    traces: Sequence[Trace],
    width: int,
    height: int,
    *,
    log_y: bool = False,
    x_label: str = "",
    y_top: float | None = None,
) -> Text:
    """The figure as exactly `height` lines of exactly `width` cells: y tick labels and axis on
    the left, the plot, then an x axis line and a row of x tick labels ending in `x_label`.
    Traces are drawn in order (the last one wins a cell); below 4 rows or 8 columns only the
    plot is drawn. `y_top` caps a linear y axis (see `outlier_cap`)."""
    width, height = max(0, width), max(0, height)
    if not width or not height:
        return Text("", no_wrap=True, end="")
    data = [(*_points(t, log_y), t.color, t.marker) for t in traces if t.upper is None]
    data = [d for d in data if len(d[0])]
    bands = [_band_points(t, log_y) for t in traces if t.upper is not None]
    bands = [b for b in bands if len(b[0])]
    # A band's edges count for the ranges as two more traces would.
    extent = data + [(b[0], b[1], b[3], "") for b in bands] + [(b[0], b[2], b[3], "") for b in bands]
    axes = height >= 4 and width >= 8
    rows = height - 2 if axes else height
    y_rows: dict[int, str] = {}
    x_range = y_range = (0.0, 1.0)
    if extent:
        x_range = _span(min(float(d[0].min()) for d in extent), max(float(d[0].max()) for d in extent), False)
        y_hi = max(float(d[1].max()) for d in extent)
        if y_top is not None and not log_y:  # values above it are drawn at the top edge
            y_hi = min(y_hi, y_top)
        y_range = _span(min(float(d[1].min()) for d in extent), y_hi, log_y)
    if axes and extent:
        max_ticks = min(MAX_Y_TICKS, max(2, (rows + 1) // 2))
        if log_y:
            ticks = log_ticks(*y_range, max_ticks)
            labels, where = tick_labels(ticks), [math.log10(t) for t in ticks]
        else:
            ticks, step = nice_ticks(*y_range, max_ticks)
            labels, where = tick_labels(ticks, step), ticks
        for label, y in zip(labels, where, strict=True):
            row = int(round((y_range[1] - y) * (rows * 4 - 1) / (y_range[1] - y_range[0]))) // 4
            y_rows.setdefault(row, label)  # never two labels on one row
    gutter = max((len(label) for label in y_rows.values()), default=0)
    if axes and width - gutter - 1 < 4:  # too narrow for the labels: keep the axis line only
        gutter, y_rows = 0, {}
    left = gutter + 1 if axes else 0
    cols = width - left
    grid = rasterize(data, cols, rows, x_range, y_range, bands)

    lines: list[str] = []
    spans: list[Span] = []
    offset = 0
    for r, plot_row in enumerate(grid.rows()):
        if axes:
            lines.append(y_rows.get(r, "").rjust(gutter) + ("┤" if r in y_rows else "│") + plot_row)
            spans.append(Span(offset + gutter, offset + left, AXIS_STYLE))
        else:
            lines.append(plot_row)
        # One span per run of cells of one colour; a blank cell takes the colour before it
        # (it looks the same), which cuts the spans that textual converts on every repaint.
        colors = grid.color[r]
        filled = np.maximum.accumulate(np.where(colors >= 0, np.arange(cols), 0))
        colors = np.where(colors[filled] >= 0, colors[filled], colors)
        cuts = [0, *(np.flatnonzero(colors[1:] != colors[:-1]) + 1).tolist(), cols]
        for start, end in zip(cuts, cuts[1:], strict=False):
            code = int(colors[start])
            if code >= 0:
                spans.append(Span(offset + left + start, offset + left + end, color_style(code)))
        offset += width + 1
    if axes:
        label = x_label[: max(0, width - 4)]
        limit = width - len(label) - 1 if label else width
        placed = _x_ticks(*x_range, left, cols, limit) if extent else []
        axis = list(" " * gutter + "└" + "─" * cols)
        ticks_row = list(" " * width)
        for col, start, text in placed:
            axis[col] = "┬"
            ticks_row[start : start + len(text)] = text
        if label:
            ticks_row[width - len(label) :] = label
            spans.append(Span(offset + width + 1 + width - len(label), offset + 2 * width + 1, X_LABEL_STYLE))
        lines += ["".join(axis), "".join(ticks_row)]
        spans.append(Span(offset + gutter, offset + width, AXIS_STYLE))
    return Text("\n".join(lines), spans=spans, no_wrap=True, overflow="crop", end="")
