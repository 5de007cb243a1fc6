"""The one chart widget of the TUI, drawn by optlab's own braille renderer (`braille.py`), so
how it is drawn can change without touching the screens: screens only call `set_series`,
`log_y`, `title`, `x_label` and `note`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from optlab.runs.axes import outlier_cap
from optlab.runs.palette import FADED, rich_color
from optlab.runs.series import Series, downsample
from optlab.tui.widgets.braille import Trace, render


def _clean(xs: Sequence[float], ys: Sequence[float], log_y: bool) -> tuple[list[float], list[float], int]:
    """Drop points that cannot be drawn: non-finite ones, and non-positive ones on a log scale.
    Returns the kept points and how many non-positive values were hidden."""
    n = min(len(xs), len(ys))
    x = np.asarray(xs[:n], dtype=np.float64)
    y = np.asarray(ys[:n], dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    hidden = 0
    if log_y:
        hidden = int(np.count_nonzero(keep & (y <= 0)))
        keep &= y > 0
    return x[keep].tolist(), y[keep].tolist(), hidden


def _clean_band(s: Series, log_y: bool) -> Trace | None:
    """An envelope's drawable buckets (both edges finite; positive on a log axis)."""
    n = min(len(s.xs), len(s.ys), len(s.upper))
    x = np.asarray(s.xs[:n], dtype=np.float64)
    lo = np.asarray(s.ys[:n], dtype=np.float64)
    hi = np.asarray(s.upper[:n], dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
    if log_y:
        keep &= (lo > 0) & (hi > 0)
    if not keep.any():
        return None
    return Trace(x[keep].tolist(), lo[keep].tolist(), s.color, upper=hi[keep].tolist())


CLIP_MARKER = "▲"


def _clip_markers(traces: Sequence[tuple[Series, Trace]], top: float) -> list[tuple[Series, Trace]]:
    """A marker at the top edge over every value above the capped scale, in its series'
    colour, so an outlier is seen where it is without flattening the other runs."""
    out = []
    for s, t in traces:
        ys = np.asarray(t.upper if t.upper is not None else t.ys, dtype=np.float64)
        over = ys > top
        if over.any():
            xs = np.asarray(t.xs, dtype=np.float64)[over]
            out.append((s, Trace(xs.tolist(), [top] * len(xs), s.color, CLIP_MARKER)))
    return out


def _signature(series: Sequence[Series]) -> tuple[object, ...]:
    """What identifies a set of series for drawing, without copying the data: points are only
    ever appended, replaced wholesale (smoothing, x axis), or restyled."""
    return tuple(
        (s.label, s.color, s.style, s.legend, s.band, len(s.xs), len(s.ys), len(s.upper),
         s.upper[-1] if len(s.upper) else None,
         s.xs[-1] if len(s.xs) else None, s.ys[-1] if len(s.ys) else None,
         s.xs[0] if len(s.xs) else None, s.ys[1] if len(s.ys) > 1 else None)
        for s in series
    )


class _Canvas(Widget):
    """Rebuilds the figure lazily, at render time, at the size it is drawn at."""

    def __init__(self, owner: Chart) -> None:
        super().__init__()
        self.owner = owner
        self.builds = 0

    def render(self) -> RenderResult:
        try:
            text = self.owner.draw(self.size.width, self.size.height)
            self.builds += 1
            # Kept so tests (and a curious developer) can read what was drawn.
            self.owner.drawn = text.plain
            return text
        except Exception as exc:  # a chart must never crash the UI, whatever data it is sent
            self.owner.error = f"{type(exc).__name__}: {exc}"
            return Text(f"chart unavailable ({self.owner.error})", style="dim")


class Chart(Vertical):
    """A line chart of several series (one colour per run) with a legend line below it."""

    DEFAULT_CSS = """
    Chart { height: 1fr; border: round $panel-lighten-2; padding: 0; }
    Chart > _Canvas { height: 1fr; }
    Chart > .chart--legend { height: auto; max-height: 3; padding: 0 1; }
    """

    def __init__(
        self,
        title: str = "",
        x_label: str = "step",
        log_y: bool = False,
        id: str | None = None,
        clip_outliers: bool = True,
    ) -> None:
        super().__init__(id=id)
        # Losses: a diverging run's 1e30 would flatten the others. Not learning rates: a
        # schedule spanning decades is the data, and the log scale shows it.
        self.clip_outliers = clip_outliers
        self._title = title
        self._x_label = x_label
        self._log_y = log_y
        self.series: list[Series] = []
        self.hidden_points = 0  # non-positive values left out of the last log-scale build
        self.clipped_points = 0  # values drawn at the top edge of the last linear build (outliers)
        self.error = ""
        self.drawn = ""  # plain text of the last figure drawn
        self.plotted: list[int] = []  # points per series in the last figure, after downsampling
        self._note = ""  # what the series are (e.g. "mean over seeds, band min–max"), in the subtitle
        self._signature: tuple[object, ...] | None = None
        self.canvas = _Canvas(self)
        self.legend = Static("", classes="chart--legend")
        self._legend = Text()
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield self.canvas
        yield self.legend

    # ------------------------------------------------------------ public API

    @property
    def title(self) -> str:
        return self._title

    @title.setter
    def title(self, value: str) -> None:
        self._title = value
        self.border_title = value

    @property
    def x_label(self) -> str:
        return self._x_label

    @x_label.setter
    def x_label(self, value: str) -> None:
        if value != self._x_label:
            self._x_label = value
            self.canvas.refresh()

    @property
    def log_y(self) -> bool:
        return self._log_y

    @log_y.setter
    def log_y(self, value: bool) -> None:
        if value != self._log_y:
            self._log_y = value
            self.canvas.refresh()
            self._update_subtitle()

    @property
    def note(self) -> str:
        return self._note

    @note.setter
    def note(self, value: str) -> None:
        if value != self._note:
            self._note = value
            self._update_subtitle()

    def set_series(self, series: list[Series]) -> None:
        """Replace every series; the figure is rebuilt on the next repaint, and only when
        something it shows changed (a build is cheap, but it is CPU that training runs on:
        the validation chart, say, changes once per epoch)."""
        signature = _signature(series)
        if signature == self._signature:
            return
        self._signature = signature
        self.series = list(series)
        self.canvas.refresh()
        self._update_legend()

    # ------------------------------------------------------------ drawing

    def _update_subtitle(self) -> None:
        parts = [self._note] if self._note else []
        if self._log_y:
            parts.append("log")
        if self._log_y and self.hidden_points:
            parts.append(f"{self.hidden_points} values <= 0 hidden")
        if not self._log_y and self.clipped_points:
            parts.append(f"{self.clipped_points} outliers above the scale (l: log)")
        self.border_subtitle = " · ".join(parts)

    def _update_legend(self) -> None:
        """One `■ name` entry per legend label, wrapped between entries, never inside one
        (rich would break after the swatch and leave it apart from its name)."""
        width = max(10, self.size.width - 4)  # the border and the legend's padding
        text = Text(no_wrap=True, overflow="ellipsis")
        seen: set[str] = set()
        line = 0
        for s in self.series:
            label = s.legend_label or s.label
            if not s.legend or label in seen:
                continue
            seen.add(label)
            entry = 2 + cell_len(label)
            if line and line + 2 + entry > width:
                text.append("\n")
                line = 0
            elif line:
                text.append("  ")
                line += 2
            text.append("■ ", style=rich_color(s.color))
            text.append(label, style="dim" if s.color == FADED else "")
            line += entry
        if text != self._legend:  # new points alone leave the legend as it was
            # Its height changes only with its line count; anything else needs no relayout.
            relayout = not self._legend.plain or text.plain.count("\n") != self._legend.plain.count("\n")
            self.legend.update(text, layout=relayout)
            self._legend = text

    def on_resize(self) -> None:
        self._update_legend()

    def draw(self, width: int, height: int) -> Text:
        """The figure of the series at this size (called by the canvas at render time)."""
        traces: list[tuple[Series, Trace]] = []
        hidden = 0
        values: list[np.ndarray] = []  # every drawable y, before downsampling
        for s in self.series:
            if s.style == "envelope":  # already one point per x bucket (optlab.runs.focus)
                band = _clean_band(s, self._log_y)
                if band is not None:
                    values += [np.asarray(band.ys), np.asarray(band.upper)]
                    traces.append((s, band))
                continue
            xs, ys, h = _clean(s.xs, s.ys, self._log_y)
            hidden += h
            if xs:
                values.append(np.asarray(ys, dtype=np.float64))
                # Braille gives two dots per cell: more points than that only cost time.
                xs, ys = downsample(xs, ys, 2 * max(10, width))
                # Per-epoch values are unconnected dots, so they read apart from the train line;
                # a band's bounds are small dots above and below the mean's, like error-bar ends.
                marker = "" if s.style == "line" else "·" if s.band else "•"
                traces.append((s, Trace(xs, ys, s.color, marker)))
        self.plotted = [len(t.xs) for _, t in traces]
        # Faded series first, then bands, so the highlighted series and the means are on top.
        ordered = sorted(traces, key=lambda item: (item[0].color != FADED, not item[0].band))
        top, clipped = None, 0
        if not self._log_y and values:  # a log axis shows every decade: nothing is cut off there
            every_y = np.concatenate(values)
            top = outlier_cap(every_y) if self.clip_outliers else None
            clipped = 0 if top is None else int((every_y > top).sum())
        if top is not None:
            ordered += _clip_markers(ordered, top)
        text = render([t for _, t in ordered], width, height, log_y=self._log_y, x_label=self._x_label, y_top=top)
        if (hidden, clipped) != (self.hidden_points, self.clipped_points):
            self.hidden_points, self.clipped_points = hidden, clipped
            self.call_later(self._update_subtitle)
        self.error = ""
        return text
