"""The sweep view: for the runs a preset's `[sweep]` expanded, the validation metric against the
swept value, one curve per group, and a per-group summary (best setting, best value, how
sensitive the metric is around it). One implementation for every front end: the TUI's sweep
screen and the reports draw from `sweep_view`.

A group is a preset run (`adam`) and the values of any other swept axes (`adam-bs128`); its
points are the values of the chosen axis (`optimizer.lr` when swept, else the first axis), each
over the point's seed runs: mean and min-max band. Only ended runs count (a running run's
best-so-far would move under the reader). A diverged run has no value: it is counted and, when
every seed of a point diverged, the point is marked at the worst edge of the chart, never
dropped silently (dropping diverged trials flatters fragile optimizers).

Pure data over the results document (a plain dict, as results.json holds it), no front end.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from optlab.preset.expand import axis_label, format_value, sweep_combos
from optlab.runs.formatting import task_of

ENDED = frozenset({"finished", "early_stopped", "stopped", "diverged", "failed"})
LOG_AXES = frozenset({"optimizer.lr", "optimizer.weight_decay"})
AXIS_NAMES = {"optimizer.lr": "learning rate", "optimizer.weight_decay": "weight decay", "batch_size": "batch size"}
METRIC_LABELS = {"val_accuracy": "validation accuracy", "val_rmse": "validation RMSE", "val_loss": "validation loss"}
_SEED = re.compile(r"@s\d+$")


@dataclass(frozen=True)
class SweepPoint:
    """One setting of one group: its seed runs and their metric."""

    setting: Any  # the swept value as the preset declares it
    label: str  # as in the run names: 1e-3
    x: float  # its position on the x axis (log10 of a learning rate, the index of a name)
    runs: tuple[str, ...]
    values: tuple[float, ...]  # the metric of each ended run that has one (diverged runs: none)
    diverged: int = 0
    failed: int = 0
    waiting: int = 0  # runs not ended yet

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    @property
    def lo(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def hi(self) -> float | None:
        return max(self.values) if self.values else None

    @property
    def all_diverged(self) -> bool:
        """Every run of the point ended without a value, some of them diverged: drawn at the edge."""
        return not self.values and not self.waiting and self.diverged > 0


@dataclass(frozen=True)
class SweepGroup:
    name: str
    points: tuple[SweepPoint, ...]  # in the order of the swept values (ascending when numeric)
    best: SweepPoint | None
    # How far the metric falls (in its units, >= 0) at the worse of the best setting's two
    # neighbours on the grid; inf when a neighbour diverged on every seed; None when no
    # neighbour has a value yet.
    sensitivity: float | None

    @property
    def runs(self) -> list[str]:
        return [name for p in self.points for name in p.runs]

    @property
    def total(self) -> int:
        return sum(len(p.runs) for p in self.points)

    @property
    def ended(self) -> int:
        return sum(len(p.runs) - p.waiting for p in self.points)

    @property
    def diverged(self) -> int:
        return sum(p.diverged for p in self.points)


@dataclass(frozen=True)
class SweepView:
    axis: str  # the swept key on the x axis: optimizer.lr
    axis_name: str  # learning rate
    log_x: bool
    categorical: bool  # names (schedulers): points at their index
    ticks: tuple[tuple[float, str], ...]  # x positions of the swept values and their labels
    metric: str  # val_accuracy, val_rmse or val_loss
    higher_is_better: bool
    reduce: str  # best (over epochs) or final (the last epoch)
    groups: tuple[SweepGroup, ...]

    @property
    def metric_label(self) -> str:
        return f"{self.reduce} {METRIC_LABELS.get(self.metric, self.metric)}"

    @property
    def x_label(self) -> str:
        return self.axis_name + (" (log scale)" if self.log_x else "")

    def group_of(self, run: str) -> str | None:
        for group in self.groups:
            if run in group.runs:
                return group.name
        return None


def metric_of(results: dict[str, Any]) -> tuple[str, bool]:
    """The validation metric compared (the TUI's runs table shows the same): accuracy, higher is
    better; for regression the RMSE, lower is better."""
    if task_of(results) != "regression":
        return "val_accuracy", True
    has_rmse = any(h.get("val_rmse") is not None for r in results.get("runs") or [] for h in r.get("history") or [])
    return ("val_rmse" if has_rmse else "val_loss"), False


def run_value(run: dict[str, Any], metric: str, higher_is_better: bool, reduce: str = "best") -> float | None:
    """A run's metric over its epochs: the best one, or the last epoch's."""
    values = [float(h[metric]) for h in run.get("history") or []
              if isinstance(h.get(metric), int | float) and math.isfinite(h[metric])]
    if not values:
        return None
    if reduce == "final":
        return values[-1]
    return max(values) if higher_is_better else min(values)


def _x_axis(sweep: dict[str, list[Any]]) -> str:
    # The learning rate is what people sweep first and read against; else the first numeric axis.
    if "optimizer.lr" in sweep:
        return "optimizer.lr"
    for key, values in sweep.items():
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return key
    return next(iter(sweep))


def _positions(values: list[Any], log: bool) -> tuple[list[Any], list[float], bool]:
    """The swept values in axis order with their x positions; categorical when not all numbers."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numeric:
        return list(values), [float(i) for i in range(len(values))], True
    ordered = sorted(dict.fromkeys(values))
    return ordered, [math.log10(v) if log else float(v) for v in ordered], False


def _sensitivity(points: list[SweepPoint], best: int, higher_is_better: bool) -> float | None:
    drops: list[float] = []
    for i in (best - 1, best + 1):
        if not 0 <= i < len(points):
            continue
        neighbour = points[i]
        if neighbour.all_diverged:
            return math.inf
        mean, top = neighbour.mean, points[best].mean
        if mean is not None and top is not None:
            drops.append(max(0.0, top - mean if higher_is_better else mean - top))
    return max(drops) if drops else None


def sweep_view(results: dict[str, Any], reduce: str = "best", axis: str | None = None) -> SweepView | None:
    """The sweep view of a results document; None when no preset sweep made its runs, or the
    chosen axis has fewer than two values."""
    preset = results.get("preset") or {}
    sweep = preset.get("sweep") or {}
    if not isinstance(sweep, dict) or not sweep:
        return None
    axis = axis if axis is not None and axis in sweep else _x_axis(sweep)
    values = list(sweep[axis])
    log_x = axis in LOG_AXES and all(isinstance(v, int | float) and v > 0 for v in values)
    ordered, xs, categorical = _positions(values, log_x)
    if len(ordered) < 2:
        return None
    scientific = [format_value(v, True) for v in ordered]
    labels = scientific if log_x else [format_value(v) for v in ordered]
    # Every generated configuration name -> (group, the x-axis value), from the declaration itself.
    where: dict[str, tuple[str, Any]] = {}
    for base in preset.get("runs") or []:
        base_name = str(base.get("name", ""))
        for combo in sweep_combos(sweep):
            name = "-".join([base_name, *(part for _, _, part in combo)])
            group = "-".join([base_name, *(part for key, _, part in combo if key != axis and part)])
            setting = next(v for key, v, _ in combo if key == axis)
            where[name] = (group, setting)
    members: dict[str, dict[int, list[dict[str, Any]]]] = {}
    index = {_key(v): i for i, v in enumerate(ordered)}
    for run in results.get("runs") or []:
        config_group = (run.get("config") or {}).get("group") or _SEED.sub("", str(run.get("name", "")))
        found = where.get(str(config_group))
        if found is None:
            continue
        group, setting = found
        members.setdefault(group, {}).setdefault(index[_key(setting)], []).append(run)
    if not members:
        return None
    metric, higher = metric_of(results)
    groups = []
    for group, by_setting in members.items():
        points = [_point(ordered[i], labels[i], xs[i], by_setting[i], metric, higher, reduce)
                  for i in sorted(by_setting)]
        scored = [i for i, p in enumerate(points) if p.mean is not None]
        best = (max if higher else min)(scored, key=lambda i: points[i].mean) if scored else None  # type: ignore[arg-type,return-value]
        groups.append(SweepGroup(group, tuple(points), points[best] if best is not None else None,
                                 _sensitivity(points, best, higher) if best is not None else None))
    return SweepView(axis, AXIS_NAMES.get(axis, axis_label(axis) or axis), log_x, categorical,
                     tuple(zip(xs, labels, strict=True)), metric, higher, reduce, tuple(groups))


def _key(value: Any) -> str:
    # JSON turns 1e-3 into 0.001 and back identically, but an int 1 and a float 1.0 sweep value
    # must still find each other.
    return repr(float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)


def _point(setting: Any, label: str, x: float, runs: list[dict[str, Any]], metric: str, higher: bool,
           reduce: str) -> SweepPoint:
    values: list[float] = []
    diverged = failed = waiting = 0
    for run in runs:
        status = run.get("status")
        if status not in ENDED:
            waiting += 1
        elif status == "diverged":
            diverged += 1
        elif status == "failed":
            failed += 1
        else:
            value = run_value(run, metric, higher, reduce)
            if value is not None:
                values.append(value)
    return SweepPoint(setting, label, x, tuple(str(r.get("name")) for r in runs), tuple(values),
                      diverged, failed, waiting)


def edge_value(view: SweepView) -> float | None:
    """Where a point whose seeds all diverged is drawn: just past the worst value on the chart."""
    values = [v for g in view.groups for p in g.points for v in p.values]
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) or 0.05 * abs(lo) or 0.05
    return lo - pad if view.higher_is_better else hi + pad


def format_metric(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if metric == "val_accuracy" else f"{value:.4g}"


def format_sensitivity(group: SweepGroup, metric: str) -> str:
    """'-0.0123' (the drop one grid step away), 'diverges' next door, '-' without a neighbour."""
    if group.sensitivity is None:
        return "-"
    if math.isinf(group.sensitivity):
        return "diverges"
    return "-" + format_metric(group.sensitivity, metric) if group.sensitivity else "0"


def summary_rows(view: SweepView) -> list[dict[str, str]]:
    """The per-group table every front end shows, best group first (groups without a value last)."""
    def order(group: SweepGroup) -> tuple[int, float]:
        if group.best is None or group.best.mean is None:
            return (1, 0.0)
        return (0, -group.best.mean if view.higher_is_better else group.best.mean)

    rows = []
    for group in sorted(view.groups, key=order):
        best = group.best
        rows.append({
            "group": group.name,
            "best": format_metric(best.mean if best else None, view.metric),
            "band": (f"{format_metric(best.lo, view.metric)}–{format_metric(best.hi, view.metric)}"
                     if best and len(best.values) > 1 else ""),
            "setting": best.label if best else "-",
            "sensitivity": format_sensitivity(group, view.metric),
            "ended": f"{group.ended}/{group.total}",
            "diverged": str(group.diverged),
        })
    return rows


SUMMARY_HEADERS = {"group": "group", "best": "best", "band": "seeds min–max", "setting": "at",
                   "sensitivity": "one step away", "ended": "ended", "diverged": "diverged"}
