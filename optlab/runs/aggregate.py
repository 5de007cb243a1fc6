"""Aggregates over seeds: every configuration (a `group` of runs that differ only in their
seed) summarised by mean, standard deviation, n, min and max, for its test metrics and for
each point of its history (the bands of a chart), and a ranking that says when the top two
configurations cannot be told apart.

Standard deviations are *sample* standard deviations (ddof = 1, numpy's `std(ddof=1)`): the
seeds are a sample of the seeds one could have run. With one value the std is undefined (None).

The ranking compares the top two configurations with Welch's t-test (unequal variances,
`scipy.stats.ttest_ind(equal_var=False)`): p >= 0.05 reads "not distinguishable", and with
fewer than two seeds on either side it says it cannot tell. Pure data in and out, so the
results fold, the reports, the console and the TUI share these functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

STD_DDOF = 1
ALPHA = 0.05
BAND_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
# Runs whose test numbers count: they ended normally or were stopped, and were tested.
COUNTED_STATUSES = frozenset({"finished", "early_stopped", "stopped"})
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "loss")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "loss")
LOWER_IS_BETTER = frozenset({"loss", "mse", "rmse", "mae"})


def group_of(run: dict[str, Any]) -> str:
    """The configuration a run belongs to (its name when it was not repeated over seeds). A run
    that has not started has no config yet: its name without `@sSEED` tells."""
    group = (run.get("config") or {}).get("group")
    return str(group) if group else re.sub(r"@s\d+$", "", str(run.get("name", "?")))


def seed_of(run: dict[str, Any]) -> int | None:
    seed = (run.get("config") or {}).get("seed")
    return seed if isinstance(seed, int) else None


def groups(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Runs by group, groups in the order of their first run."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in results.get("runs") or []:
        out.setdefault(group_of(run), []).append(run)
    return out


def has_repeats(results: dict[str, Any]) -> bool:
    return any(len(runs) > 1 for runs in groups(results).values())


def _finite(values: Iterable[Any]) -> list[float]:
    return [
        float(v) for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def stats(values: Iterable[Any]) -> dict[str, Any]:
    """mean, std (ddof = 1; None for fewer than two values), n, min, max of the finite values."""
    xs = _finite(values)
    if not xs:
        return {"mean": None, "std": None, "n": 0, "min": None, "max": None}
    arr = np.asarray(xs, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=STD_DDOF)) if len(xs) > 1 else None,
        "n": len(xs),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def history_bands(runs: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per epoch: the stats of `key` over the runs that reached that epoch (for mean + band
    charts: min-max or mean ± std)."""
    by_epoch: dict[int, list[Any]] = {}
    for run in runs:
        for record in run.get("history") or []:
            by_epoch.setdefault(int(record.get("epoch", 0)), []).append(record.get(key))
    return [{"epoch": epoch, **stats(values)} for epoch, values in sorted(by_epoch.items())]


def metric_values(runs: Sequence[dict[str, Any]], metric: str) -> list[float]:
    """The per-seed test values of `metric` that count (diverged and failed runs excluded)."""
    return _finite(
        (run.get("test") or {}).get(metric) for run in runs if run.get("status") in COUNTED_STATUSES
    )


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test, or None when it is undefined (fewer than two values
    on a side, or no variance on either side)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import ttest_ind

    p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def primary_metric(task: str) -> str:
    return "r2" if task == "regression" else "accuracy"


def rank_groups(
    results: dict[str, Any], metric: str | None = None, alpha: float = ALPHA
) -> dict[str, Any]:
    """Configurations ordered by the mean of `metric` (default accuracy, r2 for regression),
    with a verdict on the top two: `distinguishable`, `not distinguishable`, or `cannot tell`
    (fewer than two seeds on a side), and `single` when there is nothing to compare."""
    task = str((results.get("dataset") or {}).get("task") or "multiclass")
    metric = metric or primary_metric(task)
    higher = metric not in LOWER_IS_BETTER
    scored = []
    for name, runs in groups(results).items():
        values = metric_values(runs, metric)
        if values:
            scored.append((name, values, stats(values)))
    scored.sort(key=lambda item: item[2]["mean"], reverse=higher)
    out: dict[str, Any] = {
        "metric": metric, "higher_is_better": higher, "order": [n for n, _, _ in scored],
        "test": "welch t-test", "alpha": alpha, "p_value": None, "verdict": "single",
    }
    if len(scored) < 2:
        out["text"] = "nothing to rank" if not scored else f"{scored[0][0]} is the only tested configuration"
        return out
    (first, a, sa), (second, b, sb) = scored[0], scored[1]
    head = f"{first} ({format_stat(sa)}) ahead of {second} ({format_stat(sb)}) on {metric}"
    if len(a) < 2 or len(b) < 2:
        out["verdict"] = "cannot tell"
        out["text"] = f"{head}: cannot tell whether that is noise (fewer than 2 seeds; use --seeds)"
        return out
    p = welch_p(a, b)
    if p is None:  # both constant across seeds: the means alone decide
        distinct = sa["mean"] != sb["mean"]
    else:
        out["p_value"] = p
        distinct = p < alpha
    out["verdict"] = "distinguishable" if distinct else "not distinguishable"
    p_text = "no variance across seeds" if p is None else f"Welch t-test p = {p:.3g}"
    if distinct:
        out["text"] = f"{head}: distinguishable ({p_text})"
    else:
        out["text"] = f"{head}: not distinguishable ({p_text} >= {alpha:g})"
    return out


def aggregate_group(name: str, runs: Sequence[dict[str, Any]], task: str) -> dict[str, Any]:
    metrics = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[str(run.get("status"))] = statuses.get(str(run.get("status")), 0) + 1
    counted = [r for r in runs if r.get("status") in COUNTED_STATUSES]
    ttt = [r.get("time_to_target") for r in runs if r.get("time_to_target")]
    hit = [t for t in ttt if t.get("reached")]
    return {
        "group": name,
        "runs": [r.get("name") for r in runs],
        "seeds": [seed_of(r) for r in runs],
        "n": len(counted),
        "statuses": statuses,
        "test": {m: stats(metric_values(runs, m)) for m in metrics},
        "wall_time_s": stats(r.get("wall_time_s") for r in counted),
        "best_epoch": stats(r.get("best_epoch") for r in counted),
        "time_to_target": None if not ttt else {
            "reached": len(hit),
            "of": len(ttt),
            "epoch": stats(t.get("epoch") for t in hit),
            "samples_seen": stats(t.get("samples_seen") for t in hit),
            "wall_time_s": stats(t.get("wall_time_s") for t in hit),
        },
        "history": {key: history_bands(runs, key) for key in BAND_KEYS},
    }


def aggregate(results: dict[str, Any]) -> dict[str, Any] | None:
    """The `aggregates` section of results.json: None unless some configuration ran over more
    than one seed."""
    if not has_repeats(results):
        return None
    task = str((results.get("dataset") or {}).get("task") or "multiclass")
    return {
        "std_ddof": STD_DDOF,
        "groups": [aggregate_group(name, runs, task) for name, runs in groups(results).items()],
        "ranking": rank_groups(results),
    }


def format_stat(s: dict[str, Any] | None, digits: int = 4) -> str:
    """`0.9712 ± 0.0031, n=3`; `0.9712, n=1` without a std; `-` without values."""
    if not s or s.get("mean") is None:
        return "-"
    text = f"{s['mean']:.{digits}f}"
    if s.get("std") is not None:
        text += f" ± {s['std']:.{digits}f}"
    return f"{text}, n={s['n']}"
