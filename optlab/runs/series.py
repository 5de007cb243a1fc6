"""Chart data, folded from events: one home for the TUI's charts and the reports' SVG charts.

`ChartData` keeps, per run, the per-interval columns (one per x axis, then training loss and
learning rate) and the per-epoch points; `run_series` and `group_series` turn them into the
series a chart draws (one per run, or per configuration's mean and band over seeds), with the
run colours of `optlab.runs.palette`. Plain data: no terminal library, no drawing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optlab.runs.grouping import BAND_LABELS, Band, Columns, Grouping, band
from optlab.runs.palette import FADED, dim_color, run_color
from optlab.training.events import EpochEnded, Event, ExperimentStarted, Progress, RunStarted

X_AXES = ("step", "epoch", "samples", "time")
X_LABELS = {"step": "step", "epoch": "epoch", "samples": "samples seen", "time": "training time (s)"}
CHARTS = ("loss", "lr", "val")
# The validation metric compared across runs, and what a chart calls it.
VAL_LABELS = {"val_accuracy": "validation accuracy", "val_rmse": "validation RMSE", "val_loss": "validation loss"}


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: int  # a 256-colour code of the palette
    run: str = ""
    style: str = "line"  # "line", "points" (per-epoch values, dotted) or "envelope" (a shaded band)
    legend: bool = True
    band: str = ""  # "lower" / "upper": a bound of a configuration's band over seeds, drawn under the means
    legend_label: str = ""  # the legend's entry when it is not `label` (seeds share their configuration's)
    # style "envelope": `ys` is the band's lower edge and `upper` its upper edge (optlab.runs.focus)
    upper: Sequence[float] = ()


# ---------------------------------------------------------------- smoothing and thinning


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """Debiased exponential moving average: s_t = a*s_{t-1} + (1-a)*x_t, shown s_t / (1 - a^t).

    A non-finite value (a diverged loss) is passed through and does not poison later points."""
    if alpha <= 0.0:
        return list(values)
    return ema_extend(values, alpha, 0.0, 0, [])[2]


def ema_extend(
    values: Sequence[float], alpha: float, s: float, t: int, out: list[float]
) -> tuple[float, int, list[float]]:
    """`ema` continued over more values from its state (s, t) and output so far."""
    for x in values:
        if not math.isfinite(x):
            out.append(x)
            continue
        t += 1
        s = alpha * s + (1.0 - alpha) * x
        out.append(s / (1.0 - alpha**t))
    return s, t, out


def downsample(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[list[float], list[float]]:
    """At most about `n` points that keep the shape: the first and last points, and the min and
    max of each bucket (so spikes survive). Points stay in x order."""
    count = len(xs)
    if count <= max(n, 2):
        return list(xs), list(ys)
    buckets = max(1, (n - 2) // 2)
    keep = {0, count - 1}
    inner = count - 2
    for b in range(buckets):
        lo = 1 + b * inner // buckets
        hi = 1 + (b + 1) * inner // buckets
        if lo >= hi:
            continue
        idx = range(lo, hi)
        finite = [i for i in idx if math.isfinite(ys[i])]
        if not finite:
            keep.add(lo)
            continue
        keep.add(min(finite, key=lambda i: ys[i]))
        keep.add(max(finite, key=lambda i: ys[i]))
    order = sorted(keep)
    return [xs[i] for i in order], [ys[i] for i in order]


# ---------------------------------------------------------------- per-run columns


PROGRESS_COLUMNS = (*X_AXES, "train_loss", "lr")  # a column per x axis, then the values


@dataclass
class ProgressPoint:
    step: int
    epoch: float  # fractional: step / steps_per_epoch
    samples: int
    time: float  # the run's own training time, seconds
    train_loss: float
    lr: float


@dataclass
class EpochPoint:
    epoch: int
    step: int
    samples: int
    time: float
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    val_rmse: float | None = None
    lr: float | None = None


@dataclass
class RunSeries:
    name: str
    steps_per_epoch: int = 0
    total_steps: int = 0
    progress: list[ProgressPoint] = field(default_factory=list)
    epochs: list[EpochPoint] = field(default_factory=list)
    version: int = 0  # bumped by every event of this run (redraw only what changed)
    # The progress points as columns (each x axis, loss, lr), kept as they arrive: the charts
    # read them every second, and rebuilding them from the points cost more than drawing.
    columns: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in PROGRESS_COLUMNS})
    _smoothed: dict[float, tuple[int, float, int, list[float]]] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        return self.progress[-1].step if self.progress else 0

    def add_progress(self, point: ProgressPoint) -> None:
        """Append a point; a restarted run reports earlier steps again: the newer report wins."""
        while self.progress and self.progress[-1].step >= point.step:
            self.progress.pop()
            for column in self.columns.values():
                column.pop()
            self._smoothed.clear()
        self.progress.append(point)
        for key, column in self.columns.items():
            column.append(float(getattr(point, key)))

    def smoothed_loss(self, alpha: float) -> list[float]:
        """`ema` of the training loss, extended from where the last call left off."""
        losses = self.columns["train_loss"]
        if alpha <= 0.0:
            return list(losses)
        done, s, t, out = self._smoothed.get(alpha, (0, 0.0, 0, []))
        s, t, out = ema_extend(losses[done:], alpha, s, t, out)
        self._smoothed[alpha] = (len(losses), s, t, out)
        return list(out)

    def x_of(self, point: ProgressPoint | EpochPoint, axis: str) -> float:
        if axis == "step":
            return float(point.step)
        if axis == "epoch":
            return float(point.epoch)
        if axis == "samples":
            return float(point.samples)
        return float(point.time)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _optional(value: Any) -> float | None:
    return None if value is None else _num(value)


class ChartData:
    """Per-run chart columns folded from events, with the results document they belong to
    (the grouping over seeds and the task come from it)."""

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        self._doc = doc if doc is not None else {"runs": []}
        self.series: dict[str, RunSeries] = {}
        self.version = 0
        self._grouping: tuple[int, Grouping] | None = None
        self._val_key: tuple[int, str] = (-1, "")

    @classmethod
    def from_events(cls, doc: dict[str, Any], events: Iterable[Event]) -> ChartData:
        data = cls(doc)
        for event in events:
            data.fold(event)
        data.version += 1
        return data

    @property
    def doc(self) -> dict[str, Any]:
        return self._doc

    @property
    def run_names(self) -> list[str]:
        return [r["name"] for r in self.doc["runs"]]

    @property
    def task(self) -> str:
        return str((self.doc.get("dataset") or {}).get("task") or "multiclass")

    @property
    def grouping(self) -> Grouping:
        """Runs by configuration; rebuilt only when an event arrived since the last call."""
        if self._grouping is None or self._grouping[0] != self.version:
            self._grouping = (self.version, Grouping.from_doc(self.doc))
        return self._grouping[1]

    def run_series(self, name: str) -> RunSeries:
        if name not in self.series:
            self.series[name] = RunSeries(name)
        return self.series[name]

    def fold(self, event: Event) -> None:
        """Add one event's points to its run's columns."""
        if isinstance(event, ExperimentStarted):
            for name in event.run_names:
                self.run_series(name)
        elif isinstance(event, RunStarted):
            series = self.run_series(event.run)
            series.steps_per_epoch = event.steps_per_epoch
            series.total_steps = event.total_steps
        elif isinstance(event, Progress):
            series = self.run_series(event.run)
            spe = series.steps_per_epoch
            series.add_progress(
                ProgressPoint(
                    step=event.step,
                    epoch=event.step / spe if spe else float(event.epoch),
                    samples=event.samples_seen,
                    time=event.elapsed_s,
                    train_loss=_num(event.train_loss),
                    lr=_num(event.lr),
                )
            )
        elif isinstance(event, EpochEnded):
            series = self.run_series(event.run)
            series.epochs = [p for p in series.epochs if p.epoch < event.epoch]
            series.epochs.append(
                EpochPoint(
                    epoch=event.epoch, step=event.step, samples=event.samples_seen, time=event.elapsed_s,
                    train_loss=_num(event.train_loss), val_loss=_optional(event.val_loss),
                    val_accuracy=_optional(event.val_accuracy), val_rmse=_optional(event.val_rmse),
                    lr=_optional(event.lr),
                )
            )
        if event.run:
            self.run_series(event.run).version += 1

    # ------------------------------------------------------------ chart columns

    def train_loss(self, name: str, axis: str, smoothing: float = 0.0) -> tuple[list[float], list[float]]:
        series = self.run_series(name)
        return list(series.columns[axis]), series.smoothed_loss(smoothing)

    def learning_rate(self, name: str, axis: str) -> tuple[list[float], list[float]]:
        series = self.run_series(name)
        return list(series.columns[axis]), list(series.columns["lr"])

    def val_metric(self, name: str, axis: str, metric: str) -> tuple[list[float], list[float]]:
        """Per-epoch `val_loss`, `val_accuracy` or `val_rmse` (epochs without it are skipped)."""
        series = self.run_series(name)
        points = [p for p in series.epochs if getattr(p, metric) is not None]
        return [series.x_of(p, axis) for p in points], [float(getattr(p, metric)) for p in points]

    @property
    def val_key(self) -> str:
        """Accuracy; for regression the RMSE, in the same units whatever loss each run trains
        with (its own loss is not comparable across runs), or the loss in a run directory
        written before optlab recorded `val_rmse`."""
        if self.task != "regression":
            return "val_accuracy"
        if self._val_key[0] == self.version:  # asked per run and per chart: once per new events
            return self._val_key[1]
        old = any(p.val_loss is not None for s in self.series.values() for p in s.epochs) and not any(
            p.val_rmse is not None for s in self.series.values() for p in s.epochs
        )
        self._val_key = (self.version, "val_loss" if old else "val_rmse")
        return self._val_key[1]


# ---------------------------------------------------------------- chart series


def run_series(data: ChartData, axis: str, smoothing: float, highlight: str | None) -> dict[str, list[Series]]:
    """One series per run (per chart); with repeats, coloured and highlighted by configuration."""
    grouping = data.grouping
    metric = data.val_key
    out: dict[str, list[Series]] = {key: [] for key in CHARTS}
    for name in data.run_names:
        key = grouping.key(name)
        color = FADED if highlight and key != highlight else run_color(grouping.color_index(name))
        # With repeats the legend names each configuration once; without, legend_label == label.
        entry = key if grouping.repeats else ""
        out["loss"].append(Series(name, *data.train_loss(name, axis, smoothing), color, run=name, legend_label=entry))
        out["loss"].append(
            Series(f"{name} val", *data.val_metric(name, axis, "val_loss"), color, run=name,
                   style="points", legend=False)
        )
        out["lr"].append(Series(name, *data.learning_rate(name, axis), color, run=name, legend_label=entry))
        out["val"].append(
            Series(name, *data.val_metric(name, axis, metric), color, run=name, style="points", legend_label=entry)
        )
    return out


def _by_step(data: ChartData, name: str, xy: tuple[list[float], list[float]]) -> Columns:
    """A per-interval series (training loss, learning rate) keyed by step."""
    return [int(s) for s in data.run_series(name).columns["step"]], xy[0], xy[1]


def _by_epoch(data: ChartData, name: str, axis: str, metric: str) -> Columns:
    series = data.run_series(name)
    points = [p for p in series.epochs if getattr(p, metric) is not None]
    return [p.epoch for p in points], [series.x_of(p, axis) for p in points], [getattr(p, metric) for p in points]


def _mean_and_band(
    label: str, group: str, data: Band, color: int, mode: str, style: str, legend: bool, bounds_style: str
) -> list[Series]:
    out = [Series(label, data.xs, data.mean, color, run=group, style=style, legend=legend)]
    # A faded configuration keeps only its mean (highlighting is for focus); one seed has no band.
    if color != FADED and data.spread:
        lower, upper = data.bounds(mode)
        shade = dim_color(color)
        out.insert(0, Series(f"{label} upper", data.xs, upper, shade, run=group, style=bounds_style,
                             legend=False, band="upper"))
        out.insert(0, Series(f"{label} lower", data.xs, lower, shade, run=group, style=bounds_style,
                             legend=False, band="lower"))
    return out


def group_bands(data: ChartData, axis: str, smoothing: float) -> dict[str, dict[str, Band]]:
    """Per configuration, the bands over its seeds (keys "train_loss", "lr", "val_loss" and
    the validation metric). Per-interval values line up by step, per-epoch values by epoch; on
    the time axis a point sits at the mean of its seeds' training times. Smoothing applies to
    each seed's training loss before the statistics, so the band is that of the curves shown."""
    metric = data.val_key
    bands: dict[str, dict[str, Band]] = {}
    for group, names in data.grouping.groups.items():
        bands[group] = {
            "train_loss": band([_by_step(data, n, data.train_loss(n, axis, smoothing)) for n in names]),
            "lr": band([_by_step(data, n, data.learning_rate(n, axis)) for n in names]),
            "val_loss": band([_by_epoch(data, n, axis, "val_loss") for n in names]),
            metric: band([_by_epoch(data, n, axis, metric) for n in names]),
        }
    return bands


def group_series(
    data: ChartData, axis: str, smoothing: float, highlight: str | None, mode: str
) -> tuple[dict[str, list[Series]], dict[str, dict[str, Band]]]:
    """One mean series per configuration with its band, and the bands themselves (see
    `group_bands`) for anyone who checks them."""
    metric = data.val_key
    out: dict[str, list[Series]] = {key: [] for key in CHARTS}
    bands = group_bands(data, axis, smoothing)
    for index, (group, by_key) in enumerate(bands.items()):
        color = FADED if highlight and group != highlight else run_color(index)
        out["loss"] += _mean_and_band(group, group, by_key["train_loss"], color, mode, "line", True, "line")
        # Validation loss shares the loss chart with the training band: its bounds are dots,
        # so four more lines do not bury the training curves.
        out["loss"] += _mean_and_band(f"{group} val", group, by_key["val_loss"], color, mode, "points", False, "points")
        out["lr"] += _mean_and_band(group, group, by_key["lr"], color, mode, "line", True, "line")
        out["val"] += _mean_and_band(group, group, by_key[metric], color, mode, "points", True, "line")
    return out, bands


def chart_note(data: ChartData, mode: str) -> str:
    """The charts' subtitle: what a line is, when seeds are repeated ("" otherwise)."""
    if not data.grouping.repeats:
        return ""
    if mode == "seeds":
        return "each seed, coloured by configuration"
    return f"mean over seeds · band {BAND_LABELS[mode]}"
