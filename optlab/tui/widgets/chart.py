"""The one chart widget of the TUI. It wraps textual-plotext, so the plotting library can
change without touching the screens: screens only call `set_series`, `log_y`, `title` and
`x_label`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from optlab.tui.state import downsample

# 256-colour codes from the xterm colour cube, so they read the same in 256-colour terminals
# (truecolor ones show the same colours); no two are close, none is the red of a failure.
PALETTE = (39, 208, 42, 205, 184, 141, 80, 179, 112, 203, 33, 220)
FADED = 240  # grey of the runs that are not highlighted


def run_color(index: int) -> int:
    return PALETTE[index % len(PALETTE)]


def rich_color(code: int) -> str:
    return f"color({code})"


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: int
    run: str = ""
    style: str = "line"  # "line" (braille) or "points" (dotted, e.g. per-epoch values)
    legend: bool = True
    band: str = ""  # "lower" / "upper": a bound of a configuration's band over seeds, drawn under the means
    legend_label: str = ""  # the legend's entry when it is not `label` (seeds share their configuration's)


def _clean(xs: Sequence[float], ys: Sequence[float], log_y: bool) -> tuple[list[float], list[float], int]:
    """Drop points plotext cannot draw: non-finite ones, and non-positive ones on a log scale.
    Returns the kept points and how many non-positive values were hidden."""
    out_x: list[float] = []
    out_y: list[float] = []
    hidden = 0
    for x, y in zip(xs, ys, strict=False):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        if log_y and y <= 0:
            hidden += 1
            continue
        out_x.append(float(x))
        out_y.append(float(y))
    return out_x, out_y, hidden


def _signature(series: Sequence[Series]) -> tuple[object, ...]:
    """What identifies a set of series for drawing, without copying the data: points are only
    ever appended, replaced wholesale (smoothing, x axis), or restyled."""
    return tuple(
        (s.label, s.color, s.style, s.legend, s.band, len(s.xs), len(s.ys),
         s.xs[-1] if len(s.xs) else None, s.ys[-1] if len(s.ys) else None,
         s.xs[0] if len(s.xs) else None, s.ys[1] if len(s.ys) > 1 else None)
        for s in series
    )


class _Canvas(PlotextPlot):
    """Rebuilds the plotext figure lazily, at render time, at the size it is drawn at."""

    def __init__(self, owner: Chart, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.owner = owner
        self.builds = 0

    def render(self) -> RenderResult:
        try:
            self.owner.draw(self.plt, max(10, self.size.width))
            self.builds += 1
            text = super().render()
            # Kept so tests (and a curious developer) can read what was drawn.
            self.owner.drawn = text.plain if isinstance(text, Text) else str(text)
            return text
        except Exception as exc:  # plotext can fail on data it does not expect: never crash the UI
            self.owner.error = f"{type(exc).__name__}: {exc}"
            return Text(f"chart unavailable ({self.owner.error})", style="dim")


class Chart(Vertical):
    """A line chart of several series (one colour per run) with a legend line below it."""

    DEFAULT_CSS = """
    Chart { height: 1fr; border: round $panel-lighten-2; padding: 0; }
    Chart > _Canvas { height: 1fr; }
    Chart > .chart--legend { height: auto; max-height: 3; padding: 0 1; }
    """

    def __init__(self, title: str = "", x_label: str = "step", log_y: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = title
        self._x_label = x_label
        self._log_y = log_y
        self.series: list[Series] = []
        self.hidden_points = 0  # non-positive values left out of the last log-scale build
        self.error = ""
        self.drawn = ""  # plain text of the last figure drawn
        self.plotted: list[int] = []  # points per series in the last figure, after downsampling
        self._note = ""  # what the series are (e.g. "mean over seeds, band min–max"), in the subtitle
        self._signature: tuple[object, ...] | None = None
        self.canvas = _Canvas(self)
        self.legend = Static("", classes="chart--legend")
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
        something it shows changed (a plotext build costs tens of milliseconds of the CPU
        that training runs on: the validation chart, say, changes once per epoch)."""
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
        self.border_subtitle = " · ".join(parts)

    def _update_legend(self) -> None:
        text = Text(no_wrap=False, overflow="fold")
        seen: set[str] = set()
        for s in self.series:
            label = s.legend_label or s.label
            if not s.legend or label in seen:
                continue
            seen.add(label)
            if text:
                text.append("  ")
            text.append("■ ", style=rich_color(s.color))
            text.append(label, style="dim" if s.color == FADED else "")
        self.legend.update(text)

    def draw(self, plt: object, width: int) -> None:
        """Rebuild the plotext figure from the series (called by the canvas at render time)."""
        p = plt  # textual_plotext.plot.Plot
        p.clear_data()  # type: ignore[attr-defined]
        p.title("")  # type: ignore[attr-defined]
        p.xlabel(self._x_label)  # type: ignore[attr-defined]
        cleaned = []
        hidden = 0
        for s in self.series:
            xs, ys, h = _clean(s.xs, s.ys, self._log_y)
            hidden += h
            if xs:
                # Braille gives two dots per cell: more points than that only cost time.
                xs, ys = downsample(xs, ys, 2 * width)
                cleaned.append((s, xs, ys))
        self.plotted = [len(xs) for _, xs, _ in cleaned]
        # plotext fails on a log axis with no data at all: fall back to linear then.
        p.yscale("log" if self._log_y and cleaned else "linear")  # type: ignore[attr-defined]
        # Faded series first, then bands, so the highlighted series and the means are on top.
        for s, xs, ys in sorted(cleaned, key=lambda item: (item[0].color != FADED, not item[0].band)):
            if s.style == "line":
                p.plot(xs, ys, color=s.color, marker="braille")  # type: ignore[attr-defined]
            else:  # per-epoch values: unconnected dots, so they read apart from the train line;
                # a band's bounds as small dots above and below the mean's, like error-bar ends
                p.scatter(xs, ys, color=s.color, marker="·" if s.band else "•")  # type: ignore[attr-defined]
        if hidden != self.hidden_points:
            self.hidden_points = hidden
            self.call_later(self._update_subtitle)
        self.error = ""
