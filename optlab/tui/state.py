"""What the TUI knows about an experiment, folded from its events (no terminal library here).

`ExperimentState` folds the events through the same `ResultsBuilder` that writes results.json,
and keeps the chart columns per run as `optlab.runs.series.ChartData` does for the reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optlab.runs.results import ResultsBuilder
from optlab.runs.series import ChartData
from optlab.training.events import (
    RUN_STATUSES,
    Event,
    ExperimentEnded,
    ExperimentStarted,
)

ENDED_STATUSES = frozenset(RUN_STATUSES)


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


BEST_LABELS = {"val_accuracy": "best val acc", "val_rmse": "best val rmse", "val_loss": "best val loss"}


class ExperimentState(ChartData):
    """Results document (via ResultsBuilder) plus chart columns, folded from events."""

    def __init__(self) -> None:
        super().__init__()
        self.builder = ResultsBuilder()
        self.started_time: float | None = None  # wall clock (time.time()) of experiment_started
        self.ended = False
        self.events_seen = 0
        self._remaining_total: tuple[int, float | None] = (-1, None)  # (version, sum) for eta_s

    @property
    def doc(self) -> dict[str, Any]:
        return self.builder.doc

    @property
    def started(self) -> bool:
        return self.started_time is not None or bool(self.doc["runs"])

    def run(self, name: str) -> dict[str, Any]:
        return self.builder.run(name)

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
        with self.builder.deferred():  # a batch of events: the aggregates once, at its end
            self._apply(events, changed)
        if changed:
            self.version += 1
        return changed

    def _apply(self, events: Sequence[Event], changed: set[str]) -> None:
        for event in events:
            self.builder.handle(event)
            self.events_seen += 1
            changed.add(event.run)
            self.fold(event)
            if isinstance(event, ExperimentStarted):
                self.started_time = event.time or None
                changed.add("")
            elif isinstance(event, ExperimentEnded):
                self.ended = True
                changed.add("")

    # ------------------------------------------------------------ table facts

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
        # The same sum for every run: once per batch of events, not once per run and per
        # caller (the status line and each table row ask: quadratic, 0.6 s at 512 runs).
        if self._remaining_total[0] != self.version:
            total: float | None = 0.0
            for other in self.run_names:
                remaining = self._remaining_s(other)
                if remaining is None:
                    total = None
                    break
                total = (total or 0.0) + remaining
            self._remaining_total = (self.version, total)
        return self._remaining_total[1]
