"""Many runs on one chart: a few runs in colour, the rest as one grey envelope.

Hundreds of lines in a terminal chart are a grey mat where no run can be followed. Focus keeps
the shape of the crowd and the runs that matter: the top `k` runs (by best validation metric,
or the runs of one highlighted configuration) are drawn as usual, each in its own colour, and
every other run goes into one envelope, the min–max band of their values per x bucket. Plain
data, as `optlab.runs.series`: the TUI's chart draws the envelope as a shaded band, and an SVG
report could draw the same numbers as a filled path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optlab.runs.palette import FADED, run_color
from optlab.runs.series import CHARTS, ChartData, Series

FOCUS_K = 8  # runs drawn in colour: what a legend of three lines at 80 columns still names
FOCUS_AUTO = 12  # above this many runs, focus is on until the user turns it off
ENVELOPE_BINS = 256  # x buckets: two per column of a 128-column chart; the renderer fills between


@dataclass
class Envelope:
    """Per non-empty x bucket: its centre, and the lowest and highest value any run has there."""

    xs: list[float]
    low: list[float]
    high: list[float]


def envelope(runs: Sequence[tuple[Sequence[float], Sequence[float]]], bins: int = ENVELOPE_BINS) -> Envelope:
    """The min–max band of many runs' (xs, ys) over `bins` equal x buckets, vectorised: runs
    report at different x (batch sizes, training times), so they are bucketed, not aligned by
    step. Non-finite values (a diverged run's NaN) are left out, as in a seed band."""
    xs_all = [np.asarray(x, dtype=np.float64)[: len(y)] for x, y in runs]
    ys_all = [np.asarray(y, dtype=np.float64)[: len(x)] for x, y in runs]
    if not xs_all:
        return Envelope([], [], [])
    x = np.concatenate(xs_all)
    y = np.concatenate(ys_all)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if not len(x):
        return Envelope([], [], [])
    lo, hi = float(x.min()), float(x.max())
    width = (hi - lo) / bins if hi > lo else 1.0
    bucket = np.minimum(((x - lo) / width).astype(np.int64), bins - 1)
    order = np.argsort(bucket, kind="stable")
    bucket, x, y = bucket[order], x[order], y[order]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    counts = np.diff(np.r_[starts, len(x)])
    # The bucket's mean x, not its centre: a lone point (an epoch's value) stays where it was.
    centres = np.add.reduceat(x, starts) / counts
    return Envelope(centres.tolist(), np.minimum.reduceat(y, starts).tolist(), np.maximum.reduceat(y, starts).tolist())


def best_value(data: ChartData, name: str) -> float | None:
    """A run's best validation metric so far (accuracy: highest; RMSE, loss: lowest), as a
    number where larger is better; None before its first validation."""
    metric = data.val_key
    values = [v for v in data.val_metric(name, "step", metric)[1] if math.isfinite(v)]
    if not values:
        return None
    return max(values) if metric == "val_accuracy" else -min(values)


def ranked(data: ChartData, order: Sequence[str] | None = None) -> list[str]:
    """Runs best first: in `order` when given (a table's sort), else by best validation metric,
    then runs without one by their latest training loss (lowest first)."""
    names = data.run_names
    if order:
        known = [n for n in order if n in set(names)]
        return known + [n for n in names if n not in set(known)]

    def key(name: str) -> tuple[int, float]:
        best = best_value(data, name)
        if best is not None:
            return (0, -best)
        losses = [v for v in data.run_series(name).columns["train_loss"] if math.isfinite(v)]
        return (1, losses[-1] if losses else math.inf)

    return sorted(names, key=key)  # stable: ties keep preset order


def focused_runs(data: ChartData, k: int = FOCUS_K, highlight: str | None = None,
                 order: Sequence[str] | None = None) -> list[str]:
    """The runs drawn in colour: the highlighted configuration's runs, else the top `k`."""
    if highlight:
        grouping = data.grouping
        return [n for n in data.run_names if grouping.key(n) == highlight]
    return ranked(data, order)[:k]


def focus_series(data: ChartData, axis: str, smoothing: float, k: int = FOCUS_K, highlight: str | None = None,
                 order: Sequence[str] | None = None, bins: int = ENVELOPE_BINS) -> dict[str, list[Series]]:
    """Per chart: the envelope of the runs not in focus (first, so it is drawn under the rest,
    and its legend entry "+N in grey" comes first, where a cut legend still shows it), then the
    focused runs as `run_series` draws them."""
    focus = focused_runs(data, k, highlight, order)
    chosen = set(focus)
    rest = [n for n in data.run_names if n not in chosen]
    metric = data.val_key
    out: dict[str, list[Series]] = {key: [] for key in CHARTS}
    if rest:
        label = f"+{len(rest)} in grey"
        columns = {
            "loss": [data.train_loss(n, axis, smoothing) for n in rest],
            "lr": [data.learning_rate(n, axis) for n in rest],
            "val": [data.val_metric(n, axis, metric) for n in rest],
        }
        for chart, runs in columns.items():
            env = envelope(runs, bins)
            out[chart].append(Series(label, env.xs, env.low, FADED, style="envelope", upper=env.high))
    grouping = data.grouping
    for name in focus:
        # The run's own colour (its configuration's, with seeds), as in the tables and without
        # focus: a run keeps its colour while the ranking moves under live training.
        color = run_color(grouping.color_index(name))
        entry = grouping.key(name) if grouping.repeats else ""  # seeds: one legend entry per configuration
        out["loss"].append(Series(name, *data.train_loss(name, axis, smoothing), color, run=name, legend_label=entry))
        out["loss"].append(Series(f"{name} val", *data.val_metric(name, axis, "val_loss"), color, run=name,
                                  style="points", legend=False))
        out["lr"].append(Series(name, *data.learning_rate(name, axis), color, run=name, legend_label=entry))
        out["val"].append(Series(name, *data.val_metric(name, axis, metric), color, run=name, style="points",
                                 legend_label=entry))
    return out


def focus_note(total: int, shown: int, highlight: str | None = None, sorted_by: str = "best validation") -> str:
    """The charts' subtitle in focus: what is coloured, what the grey band is."""
    what = highlight if highlight else f"top {shown} by {sorted_by}"
    return f"focus: {what} of {total} runs · grey: min–max of the other {total - shown}"
