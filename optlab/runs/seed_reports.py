"""The across-seeds parts of the reports: one mean and one std row per configuration for
metrics.csv, and the "Across seeds" section of report.md with the ranking verdict. The numbers
come from the `aggregates` section of results.json (`optlab.runs.aggregate`)."""

from __future__ import annotations

from typing import Any

from optlab.runs.reports import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    TARGET_COLUMNS,
    format_value,
    header,
    target_of,
    task_of,
)

AGG_FACTS = {"test_loss": "loss"}


def aggregate_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Two rows per configuration (`kind` = mean, std) in the columns of `summary_rows`."""
    out = []
    for group in (results.get("aggregates") or {}).get("groups") or []:
        for kind in ("mean", "std"):
            row: dict[str, Any] = {"name": group["group"], "group": group["group"], "kind": kind, "n": group["n"]}
            row["status"] = ", ".join(f"{n} {s}" for s, n in group["statuses"].items())
            for column, stat in group["test"].items():
                row[{"loss": "test_loss"}.get(column, column)] = stat.get(kind)
            row["wall_time_s"] = group["wall_time_s"].get(kind)
            row["best_epoch"] = group["best_epoch"].get(kind)
            ttt = group.get("time_to_target") or {}
            for column, key in zip(TARGET_COLUMNS, ("epoch", "samples_seen", "wall_time_s"), strict=True):
                row[column] = (ttt.get(key) or {}).get(kind)
            out.append(row)
    return out


def mean_std(stat: dict[str, Any] | None, column: str = "") -> str:
    """`0.9712 ± 0.0031` in the column's display form; the mean alone when n = 1."""
    if not stat or stat.get("mean") is None:
        return "-"
    mean = format_value(column, stat["mean"]) if column not in ("best_epoch", "target_epoch") else f"{stat['mean']:.1f}"
    if stat.get("std") is None:
        return mean
    std = format_value(column, stat["std"]) if column not in ("best_epoch", "target_epoch") else f"{stat['std']:.1f}"
    return f"{mean} ± {std}"


def seeds_markdown(results: dict[str, Any]) -> list[str]:
    aggregates = results.get("aggregates")
    if not aggregates:
        return []
    metrics = REGRESSION_METRICS if task_of(results) == "regression" else CLASSIFICATION_METRICS
    cols = [*metrics, "test_loss", "wall_time_s"]
    out = ["", "## Across seeds", "",
           f"Mean ± sample standard deviation (ddof = {aggregates.get('std_ddof', 1)}) over each configuration's "
           "seeds; n counts the runs that were tested.", ""]
    target = target_of(results)
    heads = ["configuration", "n", "seeds", *(header(c) for c in cols)] + (["reached target"] if target else [])
    out += ["| " + " | ".join(heads) + " |", "|---|---:|---|" + "---:|" * (len(heads) - 3)]
    for group in aggregates.get("groups") or []:
        cells = [group["group"], str(group["n"]), ", ".join(str(s) for s in group["seeds"])]
        for c in cols:
            stat = group["wall_time_s"] if c == "wall_time_s" else group["test"].get(AGG_FACTS.get(c, c))
            cells.append(mean_std(stat, c))
        ttt = group.get("time_to_target")
        if target:
            cells.append(f"{ttt['reached']}/{ttt['of']}, epoch {mean_std(ttt['epoch'], 'target_epoch')}"
                         if ttt and ttt["reached"] else (f"0/{ttt['of']}" if ttt else "-"))
        out.append("| " + " | ".join(cells) + " |")
    ranking = aggregates.get("ranking") or {}
    if ranking.get("text"):
        out += ["", f"**Ranking:** {ranking['text']}."]
    return out
