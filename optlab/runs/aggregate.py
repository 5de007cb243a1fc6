"""Aggregates over seeds: every configuration (a `group` of runs that differ only in their
seed) summarised by mean, standard deviation, n, min and max, for its test metrics and for
each point of its history (the bands of a chart), and a ranking that says when the top two
configurations cannot be told apart.

Standard deviations are *sample* standard deviations (ddof = 1, numpy's `std(ddof=1)`): the
seeds are a sample of the seeds one could have run. With one value the std is undefined (None).

The ranking compares configurations with Welch's t-test (unequal variances,
`scipy.stats.ttest_ind(equal_var=False)`): p >= 0.05 reads "not distinguishable", and with
fewer than two seeds on either side it says it cannot tell. When both sides have the same value
for every seed (no variance at all) the test is undefined and the means alone decide. Its verdict
on the top two is the ranking's sentence; `ranks` gives every configuration a rank (see
`rank_entries`). Pure data in and out, so the results fold, the reports, the console and the
TUI share these functions.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

STD_DDOF = 1
ALPHA = 0.05
BAND_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_rmse")
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
    # Identical values: numpy's mean of them can be off by an ulp (0.9275...091 for three
    # 0.9275...092), which leaves a std of ~1e-16 and makes two constant configurations with
    # the same value look different. Their mean is the value and their spread is none.
    constant = len(set(xs)) == 1
    return {
        "mean": xs[0] if constant else float(arr.mean()),
        "std": None if len(xs) < 2 else 0.0 if constant else float(arr.std(ddof=STD_DDOF)),
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
    """Two-sided p-value of Welch's t-test, or None when it is undefined: fewer than two values
    on a side, or every value equal on both sides (no variance at all; the caller compares the
    means). One constant side is fine: the other side's variance carries the test."""
    if len(a) < 2 or len(b) < 2:
        return None
    if len(set(a)) == 1 and len(set(b)) == 1:
        return None
    from scipy.stats import ttest_ind

    # scipy warns on stderr ("Precision loss occurred in moment calculation") when a side's
    # values are (nearly) identical; the case is handled here, so the warning would only be noise
    # in the middle of `compare`'s output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def compare(
    a: Sequence[float], sa: dict[str, Any], b: Sequence[float], sb: dict[str, Any], alpha: float = ALPHA
) -> tuple[str, float | None]:
    """The verdict on two configurations' per-seed values (`sa`, `sb` their `stats`):
    `cannot tell` (fewer than two seeds on a side), `distinguishable` or `not distinguishable`,
    and the Welch p-value (None when there is none)."""
    if len(a) < 2 or len(b) < 2:
        return "cannot tell", None
    p = welch_p(a, b)
    # No variance on either side: the test is undefined and the means alone decide.
    distinct = sa["mean"] != sb["mean"] if p is None else p < alpha
    return ("distinguishable" if distinct else "not distinguishable"), p


def rank_entries(
    scored: Sequence[tuple[str, Sequence[float], dict[str, Any]]], alpha: float = ALPHA
) -> list[dict[str, Any]]:
    """A rank for each configuration of `scored` (best first): each is compared with the
    configuration that holds the rank above it (the first of its tie). Not distinguishable from
    it: the same rank, labelled `1=`; distinguishable: its own position (competition ranking,
    so after `1`, `1=` comes `3`); cannot tell (fewer than two seeds): its position with `?`.
    Comparing with the holder rather than with the row just above keeps `1=` meaning "not told
    apart from the first", never a chain of small steps down from it."""
    out: list[dict[str, Any]] = []
    holder: tuple[str, Sequence[float], dict[str, Any]] | None = None
    held = 0
    for position, (name, values, s) in enumerate(scored, start=1):
        entry: dict[str, Any] = {"group": name, "rank": position, "label": str(position),
                                 "versus": None, "verdict": None, "p_value": None}
        if holder is not None:
            verdict, p = compare(holder[1], holder[2], values, s, alpha)
            entry.update(versus=holder[0], verdict=verdict, p_value=p)
            if verdict == "not distinguishable":
                entry.update(rank=held, label=f"{held}=")
            elif verdict == "cannot tell":
                entry["label"] = f"{position}?"
        # A tie keeps the holder; so does a configuration with too few seeds to be compared
        # with anything (it must not turn the next, comparable one into a "?").
        if holder is None or (entry["verdict"] != "not distinguishable" and len(values) >= 2):
            holder, held = (name, values, s), position
        out.append(entry)
    return out


def primary_metric(task: str) -> str:
    return "r2" if task == "regression" else "accuracy"


def rank_groups(
    results: dict[str, Any], metric: str | None = None, alpha: float = ALPHA
) -> dict[str, Any]:
    """Configurations ordered by the mean of `metric` (default accuracy, r2 for regression),
    with a verdict on the top two: `distinguishable`, `not distinguishable`, or `cannot tell`
    (fewer than two seeds on a side), and `single` when there is nothing to compare; `ranks`
    holds every ranked configuration's rank (`rank_entries`)."""
    task = str((results.get("dataset") or {}).get("task") or "multiclass")
    metric = metric or primary_metric(task)
    higher = metric not in LOWER_IS_BETTER
    scored = []
    for name, runs in groups(results).items():
        values = metric_values(runs, metric)
        if values:
            scored.append((name, values, stats(values)))
    scored.sort(key=lambda item: item[2]["mean"], reverse=higher)
    ranks = rank_entries(scored, alpha)
    out: dict[str, Any] = {
        "metric": metric, "higher_is_better": higher, "order": [n for n, _, _ in scored],
        "test": "welch t-test", "alpha": alpha, "p_value": None, "verdict": "single", "ranks": ranks,
    }
    if len(scored) < 2:
        out["text"] = "nothing to rank" if not scored else f"{scored[0][0]} is the only tested configuration"
        return out
    (first, _, sa), (second, _, sb) = scored[0], scored[1]
    head = f"{first} ({format_stat(sa)}) ahead of {second} ({format_stat(sb)}) on {metric}"
    # The second configuration was compared with the first: its verdict is the ranking's.
    verdict, p = ranks[1]["verdict"], ranks[1]["p_value"]
    out["verdict"], out["p_value"] = verdict, p
    if verdict == "cannot tell":
        out["text"] = f"{head}: cannot tell whether that is noise (fewer than 2 seeds; use --seeds)"
        return out
    p_text = "no variance across seeds" if p is None else f"Welch t-test p = {p:.3g}"
    if verdict == "distinguishable":
        out["text"] = f"{head}: distinguishable ({p_text})"
    elif p is None:
        out["text"] = f"{head}: not distinguishable ({p_text}, equal means)"
    else:
        out["text"] = f"{head}: not distinguishable ({p_text} >= {alpha:g})"
    return out


def aggregate_group(name: str, runs: Sequence[dict[str, Any]], task: str) -> dict[str, Any]:
    metrics = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[str(run.get("status"))] = statuses.get(str(run.get("status")), 0) + 1
    counted = [r for r in runs if r.get("status") in COUNTED_STATUSES]
    ttt = [t for r in runs if (t := r.get("time_to_target"))]
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


def ranked_groups(results: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The aggregate groups in ranking order, each with its rank entry; configurations with no
    tested value (every seed diverged or failed) follow in preset order with None. A document
    written before ranks were recorded gets them computed from its runs."""
    aggregates = results.get("aggregates") or {}
    ranking = aggregates.get("ranking") or {}
    ranks = ranking.get("ranks")
    if ranks is None:
        ranks = rank_groups(results, ranking.get("metric"), ranking.get("alpha", ALPHA))["ranks"]
    by_name = {str(g["group"]): g for g in aggregates.get("groups") or []}
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        (by_name[r["group"]], r) for r in ranks if r["group"] in by_name
    ]
    ranked = {r["group"] for r in ranks}
    out += [(g, None) for name, g in by_name.items() if name not in ranked]
    return out


def format_stat(s: dict[str, Any] | None, digits: int = 4) -> str:
    """`0.9712 ± 0.0031, n=3`; `0.9712, n=1` without a std; `-` without values."""
    if not s or s.get("mean") is None:
        return "-"
    text = f"{s['mean']:.{digits}f}"
    if s.get("std") is not None:
        text += f" ± {s['std']:.{digits}f}"
    return f"{text}, n={s['n']}"
