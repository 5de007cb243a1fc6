"""The reports' charts: RUN_DIR/charts/*.svg from the results document and the event log.

The series come from `optlab.runs.series` (the TUI's charts draw the same data), the colours
from `optlab.runs.palette` (each run, or each configuration over seeds, has its TUI and console
colour), the axis rules from `optlab.runs.axes` (log learning rates, the outlier rule).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from optlab.runs.aggregate import LOWER_IS_BETTER, primary_metric, rank_groups
from optlab.runs.axes import wants_log
from optlab.runs.formatting import target_of
from optlab.runs.palette import hex_color, run_color
from optlab.runs.series import VAL_LABELS, X_LABELS, ChartData, group_bands
from optlab.runs.svg import Area, DotRow, Figure, Line, dot_plot, line_chart
from optlab.runs.sweep_report import SWEEP_SVG, sweep_svg
from optlab.training.events import EpochEnded, Progress, RunStarted

if TYPE_CHECKING:
    from optlab.training.events import Event

CHART_DIR = "charts"
DEFAULT_AXIS = "samples"  # samples seen: runs with different batch sizes line up fairly
SMOOTHING = 0.6  # the debiased EMA of the training loss (the raw series is drawn faint)
LABELS = {"loss": "loss", "val_metric": "validation metric", "lr": "learning rate",
          "test_metrics": "test metrics", "time_to_target": "time to target"}
METRIC_LABELS = {"accuracy": "test accuracy", "r2": "test R²", "rmse": "test RMSE", "mse": "test MSE",
                 "mae": "test MAE", "f1": "test F1", "loss": "test loss"}


def _groups(data: ChartData) -> list[tuple[str, list[str], str]]:
    """(legend label, runs, colour) per line: each run, or with repeated seeds each configuration.
    Without repeats each run is its own group, so the i-th group has the i-th colour either way,
    as in the TUI."""
    grouping = data.grouping
    return [
        (group if grouping.repeats else names[0], names, hex_color(run_color(i)))
        for i, (group, names) in enumerate(grouping.groups.items())
    ]


def _seed_note(data: ChartData) -> str:
    return "mean over seeds · band ±1 std (darker), min–max (faint)" if data.grouping.repeats else ""


def _band_figure(fig: Figure, data: ChartData, axis: str, key: str, smoothing: float,
                 dots: bool, joined: bool, legend: bool = True) -> None:
    """Each configuration's mean over seeds with a ±1 std band and a faint min–max band."""
    bands = group_bands(data, axis, smoothing)
    for label, _names, color in _groups(data):
        b = bands[label][key]
        if not b.xs:
            continue
        if b.spread:
            fig.areas.append(Area(b.xs, b.min, b.max, color, 0.10))
            # The std band stays inside min–max: a loss band reaching below zero, or an accuracy
            # above one, would show values no seed had.
            lower, upper = b.bounds("std")
            lower = [max(v, m) if math.isfinite(v) else v for v, m in zip(lower, b.min, strict=True)]
            upper = [min(v, m) if math.isfinite(v) else v for v, m in zip(upper, b.max, strict=True)]
            fig.areas.append(Area(b.xs, lower, upper, color, 0.22))
        fig.lines.append(Line(b.xs, b.mean, color, label if legend else "", dots=dots, joined=joined))


def loss_figure(data: ChartData, axis: str = DEFAULT_AXIS) -> Figure:
    fig = Figure("Loss: training (smoothed line, raw faint) and validation (dots)", X_LABELS[axis], "loss",
                 note=_seed_note(data) or f"training loss: debiased EMA {SMOOTHING}")
    if data.grouping.repeats:
        _band_figure(fig, data, axis, "train_loss", SMOOTHING, dots=False, joined=True)
        _band_figure(fig, data, axis, "val_loss", 0.0, dots=True, joined=False, legend=False)
        return fig
    for label, (name,), color in _groups(data):
        xs, raw = data.train_loss(name, axis)
        fig.lines.append(Line(xs, raw, color, width=1.0, opacity=0.25))
        fig.lines.append(Line(xs, data.train_loss(name, axis, SMOOTHING)[1], color, label))
        vx, vy = data.val_metric(name, axis, "val_loss")
        fig.lines.append(Line(vx, vy, color, dots=True, joined=False))
    return fig


def val_figure(data: ChartData, axis: str = DEFAULT_AXIS) -> Figure:
    metric = data.val_key
    fig = Figure(VAL_LABELS[metric].capitalize() + " per epoch", X_LABELS[axis],
                 VAL_LABELS[metric] + (" (0–1)" if metric == "val_accuracy" else ""), note=_seed_note(data),
                 clip_outliers=metric != "val_accuracy")
    if data.grouping.repeats:
        _band_figure(fig, data, axis, metric, 0.0, dots=True, joined=True)
        return fig
    for label, (name,), color in _groups(data):
        fig.lines.append(Line(*data.val_metric(name, axis, metric), color, label, dots=True))
    return fig


def lr_figure(data: ChartData, axis: str = DEFAULT_AXIS) -> Figure:
    fig = Figure("Learning rate per step (the rate each step trained with)", X_LABELS[axis], "learning rate",
                 clip_outliers=False)
    for label, names, color in _groups(data):
        # Seeds of one configuration share their schedule: the first seed's rates are the group's.
        fig.lines.append(Line(*data.learning_rate(names[0], axis), color, label))
    fig.log_y = wants_log(line.ys for line in fig.lines)
    return fig


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]


def _rows_by_rank(data: ChartData, values_of: Any) -> list[DotRow]:
    """One row per configuration in ranking order (unranked ones last, in preset order)."""
    ranking = rank_groups(data.doc)
    runs = {r["name"]: r for r in data.doc.get("runs") or []}
    lines = dict(zip(data.grouping.groups, _groups(data), strict=True))
    order = [g for g in ranking["order"] if g in lines] + [g for g in lines if g not in ranking["order"]]
    rows = []
    for group in order:
        label, names, color = lines[group]
        values, note = values_of([runs[n] for n in names if n in runs])
        mean = sum(values) / len(values) if values else None
        rows.append(DotRow(label, color, values, mean, note))
    return rows


def test_metrics_figure(data: ChartData) -> str:
    metric = str(rank_groups(data.doc)["metric"] or primary_metric(data.task))

    def values(runs: list[dict[str, Any]]) -> tuple[list[float], str]:
        found = _finite((r.get("test") or {}).get(metric) for r in runs)
        return found, "" if found else "no test value"

    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    if data.grouping.repeats:
        note = f"sorted by rank (mean over seeds, {better} is better); a dot per seed, a bar at the mean"
    else:
        note = f"sorted by {METRIC_LABELS.get(metric, metric)} ({better} is better)"
    return dot_plot(f"Final {METRIC_LABELS.get(metric, metric)} by configuration",
                    METRIC_LABELS.get(metric, metric), _rows_by_rank(data, values), note)


def time_to_target_figure(data: ChartData, target: dict[str, Any]) -> str:
    def values(runs: list[dict[str, Any]]) -> tuple[list[float], str]:
        hits = [r.get("time_to_target") or {} for r in runs]
        found = _finite(h.get("samples_seen") for h in hits if h.get("reached"))
        return found, f"{len(found)}/{len(runs)} reached" if len(found) < len(runs) else ""

    title = f"Samples seen until {target.get('metric')} reached {target.get('value')}"
    return dot_plot(title, "training samples seen (fewer is faster)", _rows_by_rank(data, values),
                    "first epoch end that reached the target; a dot per seed, a bar at the mean", from_zero=True)


def events_from_history(doc: dict[str, Any]) -> list[Event]:
    """A run directory holding only results.json (no events.jsonl): its per-epoch history as
    events, so the charts still show every epoch (training loss once per epoch then)."""
    out: list[Event] = []
    for run in doc.get("runs") or []:
        name, spe, elapsed = str(run.get("name")), int(run.get("steps_per_epoch") or 0), 0.0
        out.append(RunStarted(run=name, steps_per_epoch=spe, total_steps=int(run.get("total_steps") or 0)))
        for record in sorted(run.get("history") or [], key=lambda h: h.get("epoch", 0)):
            epoch = int(record.get("epoch") or 0)
            elapsed += float(record.get("epoch_s") or 0.0)
            step, samples = epoch * spe, int(record.get("samples_seen") or 0)
            nan = float("nan")  # null in results.json: a diverged epoch's undefined loss
            loss = nan if record.get("train_loss") is None else float(record["train_loss"])
            lr = nan if record.get("lr") is None else float(record["lr"])
            out.append(Progress(run=name, step=step, epoch=epoch, samples_seen=samples, train_loss=loss, lr=lr,
                                elapsed_s=elapsed))
            out.append(EpochEnded(run=name, epoch=epoch, step=step, samples_seen=samples, train_loss=loss, lr=lr,
                                  val_loss=record.get("val_loss"), val_accuracy=record.get("val_accuracy"),
                                  val_rmse=record.get("val_rmse"), elapsed_s=elapsed))
    return out


def render_charts(doc: dict[str, Any], events: Iterable[Event], axis: str = DEFAULT_AXIS) -> dict[str, str]:
    """File name -> SVG text of every chart of this experiment (from its per-epoch history
    when there are no events)."""
    events = list(events)
    data = ChartData.from_events(doc, events or events_from_history(doc))
    charts = {
        "loss.svg": line_chart(loss_figure(data, axis)),
        "val_metric.svg": line_chart(val_figure(data, axis)),
        "lr.svg": line_chart(lr_figure(data, axis)),
        "test_metrics.svg": test_metrics_figure(data),
    }
    target = target_of(doc)
    if target:
        charts["time_to_target.svg"] = time_to_target_figure(data, target)
    sweep = sweep_svg(doc)
    if sweep is not None:  # a sweep's reports lead with it
        charts = {SWEEP_SVG: sweep, **charts}
    return charts
