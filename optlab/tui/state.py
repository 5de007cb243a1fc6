"""What the TUI knows about an experiment, folded from its events (no terminal library here).

`EventTail` reads `events.jsonl` incrementally: it keeps a byte offset and holds a partial
last line back until the writer finishes it. `ExperimentState` folds the events through the
same `ResultsBuilder` that writes results.json, and keeps the chart series per run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optlab.runs.results import ResultsBuilder
from optlab.training.events import (
    RUN_STATUSES,
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    Progress,
    RunEnded,
    RunStarted,
    event_from_dict,
)
from optlab.tui.seeds import Grouping

X_AXES = ("step", "epoch", "samples", "time")
X_LABELS = {"step": "step", "epoch": "epoch", "samples": "samples seen", "time": "training time (s)"}
ENDED_STATUSES = frozenset(RUN_STATUSES)

# ---------------------------------------------------------------- tailing


class EventTail:
    """Incremental reader of an append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.bad_lines = 0
        self._partial = b""

    def read(self, max_bytes: int = 4 << 20) -> list[Event]:
        """Events completed since the last call (none if the file does not exist yet)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self.offset:  # truncated or replaced: start again
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(max_bytes)
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        events: list[Event] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(event_from_dict(json.loads(line.decode("utf-8", errors="replace"))))
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
        return events


# ---------------------------------------------------------------- series helpers


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


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# ---------------------------------------------------------------- state


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


# The validation metric compared across runs, and what the screen calls it.
VAL_LABELS = {"val_accuracy": "validation accuracy", "val_rmse": "validation RMSE", "val_loss": "validation loss"}
BEST_LABELS = {"val_accuracy": "best val acc", "val_rmse": "best val rmse", "val_loss": "best val loss"}


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
            if isinstance(point, EpochPoint):
                return float(point.epoch)
            return point.epoch
        if axis == "samples":
            return float(point.samples)
        return float(point.time)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


class ExperimentState:
    """Results document (via ResultsBuilder) plus chart series, folded from events."""

    def __init__(self) -> None:
        self.builder = ResultsBuilder()
        self.series: dict[str, RunSeries] = {}
        self.started_time: float | None = None  # wall clock (time.time()) of experiment_started
        self.ended = False
        self.events_seen = 0
        self.version = 0
        self._grouping: tuple[int, Grouping] | None = None
        self._val_key: tuple[int, str] = (-1, "")

    @property
    def doc(self) -> dict[str, Any]:
        return self.builder.doc

    @property
    def run_names(self) -> list[str]:
        return [r["name"] for r in self.doc["runs"]]

    @property
    def task(self) -> str:
        return str((self.doc.get("dataset") or {}).get("task") or "multiclass")

    @property
    def started(self) -> bool:
        return self.started_time is not None or bool(self.doc["runs"])

    def run(self, name: str) -> dict[str, Any]:
        return self.builder.run(name)

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

    def all_runs_ended(self) -> bool:
        runs = self.doc["runs"]
        return bool(runs) and all(r["status"] in ENDED_STATUSES for r in runs)

    @property
    def finished(self) -> bool:
        """Every run has ended (the final table can be shown)."""
        return self.ended or self.all_runs_ended()

    def apply(self, events: Sequence[Event]) -> set[str]:
        """Fold events in; return the names of the runs that changed ("" for the experiment)."""
        changed: set[str] = set()
        for event in events:
            self.builder.handle(event)
            self.events_seen += 1
            changed.add(event.run)
            if isinstance(event, ExperimentStarted):
                self.started_time = event.time or None
                for name in event.run_names:
                    self.run_series(name)
                changed.add("")
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
                        epoch=event.epoch,
                        step=event.step,
                        samples=event.samples_seen,
                        time=event.elapsed_s,
                        train_loss=_num(event.train_loss),
                        val_loss=None if event.val_loss is None else _num(event.val_loss),
                        val_accuracy=None if event.val_accuracy is None else _num(event.val_accuracy),
                        val_rmse=None if event.val_rmse is None else _num(event.val_rmse),
                    )
                )
            elif isinstance(event, RunEnded):
                self.run_series(event.run)
            elif isinstance(event, ExperimentEnded):
                self.ended = True
                changed.add("")
            if event.run:
                self.run_series(event.run).version += 1
        if changed:
            self.version += 1
        return changed

    # ------------------------------------------------------------ chart data

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

    # ------------------------------------------------------------ table facts

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

    def best_val(self, name: str) -> float | None:
        """Best validation accuracy (max), or best validation RMSE (min) for regression."""
        metric = self.val_key
        values = [
            getattr(p, metric)
            for p in self.run_series(name).epochs
            if getattr(p, metric) is not None and math.isfinite(getattr(p, metric))
        ]
        if not values:
            return None
        return max(values) if metric == "val_accuracy" else min(values)

    def _remaining_s(self, name: str) -> float | None:
        """Training time this run still needs at its own pace (None when unknown)."""
        run = self.run(name)
        series = self.run_series(name)
        progress = run.get("progress") or {}
        step, elapsed = progress.get("step") or 0, progress.get("elapsed_s") or 0.0
        total = series.total_steps or run.get("total_steps") or 0
        if run["status"] in ENDED_STATUSES:
            return 0.0
        if not total or step <= 0 or elapsed <= 0:
            return None
        return max(0, total - step) * elapsed / step

    def eta_s(self, name: str) -> float | None:
        """Wall-clock seconds until this run ends. The runner interleaves runs so that all of
        them keep about the same share done, so a running run ends when the slowest does: the
        estimate is the remaining time of every unfinished run, added up."""
        if self.run(name)["status"] in ENDED_STATUSES:
            return 0.0
        total = 0.0
        for other in self.run_names:
            remaining = self._remaining_s(other)
            if remaining is None:
                return None
            total += remaining
        return total
