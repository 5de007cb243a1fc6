"""The across-seeds parts of the reports: one mean and one std row per configuration for
metrics.csv, and the "Across seeds" section of report.md with the ranking verdict. The numbers
come from the `aggregates` section of results.json (`optlab.runs.aggregate`); configurations are
listed in ranking order with their rank (`rank_entries`), the console table included."""

from __future__ import annotations

from typing import Any

from optlab.runs.aggregate import ranked_groups
from optlab.runs.formatting import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    TARGET_COLUMNS,
    format_value,
    header,
    target_of,
    task_of,
)

AGG_FACTS = {"test_loss": "loss"}
# Time to target across seeds: table column -> key of an aggregate group's `time_to_target`.
TARGET_STATS = dict(zip(TARGET_COLUMNS, ("epoch", "samples_seen", "wall_time_s"), strict=True))
RANK_LEGEND = (
    "rank `k=`: not distinguishable from the configuration ranked k (Welch t-test over seeds, p >= 0.05; "
    "equal values when no seed varies); `k?`: fewer than 2 seeds to tell"
)


def rank_text(rank: dict[str, Any] | None) -> str:
    """`1`, `1=` (not told apart from the holder of rank 1), `3?` (too few seeds), `-` (unranked)."""
    return "-" if rank is None else str(rank.get("label") or rank.get("rank"))


def rank_mark(rank: dict[str, Any] | None) -> str:
    """The label's marker alone (`=`, `?` or empty), for a CSV that keeps `rank` numeric."""
    label = rank_text(rank)
    return label[-1] if label[-1:] in ("=", "?") else ""


def aggregate_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Two rows per configuration (`kind` = mean, std) in the columns of `summary_rows`, in
    ranking order, with `rank` (a number shared by a tie) and `rank_mark`."""
    out = []
    for group, rank in ranked_groups(results):
        for kind in ("mean", "std"):
            row: dict[str, Any] = {"name": group["group"], "group": group["group"], "kind": kind, "n": group["n"]}
            row["rank"] = None if rank is None else rank["rank"]
            row["rank_mark"] = rank_mark(rank)
            row["status"] = ", ".join(f"{n} {s}" for s, n in group["statuses"].items())
            for column, stat in group["test"].items():
                row[{"loss": "test_loss"}.get(column, column)] = stat.get(kind)
            row["wall_time_s"] = group["wall_time_s"].get(kind)
            row["best_epoch"] = group["best_epoch"].get(kind)
            ttt = group.get("time_to_target") or {}
            for column, key in TARGET_STATS.items():
                row[column] = (ttt.get(key) or {}).get(kind)
            out.append(row)
    return out


def _display(column: str, value: float) -> str:
    """A mean or std in the column's form; epochs and samples are averages, so not truncated."""
    if column in ("best_epoch", "target_epoch"):
        return f"{value:.1f}"
    if column == "target_samples":
        return f"{value:,.0f}"
    return format_value(column, value)


def mean_std(stat: dict[str, Any] | None, column: str = "") -> str:
    """`0.9712 ± 0.0031` in the column's display form; the mean alone when n = 1."""
    if not stat or stat.get("mean") is None:
        return "-"
    mean = _display(column, stat["mean"])
    if stat.get("std") is None:
        return mean
    return f"{mean} ± {_display(column, stat['std'])}"


def compact_mean_std(stat: dict[str, Any] | None, column: str = "") -> str:
    """`0.9712±0.0031`: the mean as `mean_std` shows it, the std to two significant digits
    with no spaces, for tables that must fit a terminal."""
    if not stat or stat.get("mean") is None:
        return "-"
    mean = _display(column, stat["mean"])
    std = stat.get("std")
    if std is None:
        return mean
    if column in ("wall_time_s", "target_time_s", "target_samples", "best_epoch", "target_epoch"):
        return f"{mean}±{_display(column, std)}"
    # Two significant digits, trailing zeros kept (0.10, not 0.1); whole numbers from 10 up.
    return f"{mean}±{std:.0f}" if abs(std) >= 10 else f"{mean}±{f'{std:#.2g}'.rstrip('.')}"


def target_cells(group: dict[str, Any]) -> list[str]:
    """`reached` as "2 of 3", then mean ± std of target epoch, samples seen and wall time over
    the seeds that reached it ("-" when none did)."""
    ttt = group.get("time_to_target")
    if not ttt:
        return ["-"] * (1 + len(TARGET_STATS))
    return [f"{ttt['reached']} of {ttt['of']}",
            *(mean_std(ttt.get(key), column) for column, key in TARGET_STATS.items())]


def target_headers() -> list[str]:
    return ["reached target", *(header(c) for c in TARGET_COLUMNS)]


def seeds_markdown(results: dict[str, Any]) -> list[str]:
    aggregates = results.get("aggregates")
    if not aggregates:
        return []
    metrics = REGRESSION_METRICS if task_of(results) == "regression" else CLASSIFICATION_METRICS
    cols = [*metrics, "test_loss", "wall_time_s"]
    ranking = aggregates.get("ranking") or {}
    out = ["", "## Across seeds", "",
           f"Mean ± sample standard deviation (ddof = {aggregates.get('std_ddof', 1)}) over each configuration's "
           "seeds; n counts the runs that were tested. Configurations in order of their mean "
           f"{ranking.get('metric', 'accuracy')}; {RANK_LEGEND}.", ""]
    target = target_of(results)
    heads = ["rank", "configuration", "n", "seeds", *(header(c) for c in cols)]
    heads += target_headers() if target else []
    out += ["| " + " | ".join(heads) + " |", "|---:|---|---:|---|" + "---:|" * (len(heads) - 4)]
    for group, rank in ranked_groups(results):
        cells = [rank_text(rank), group["group"], str(group["n"]), ", ".join(str(s) for s in group["seeds"])]
        for c in cols:
            stat = group["wall_time_s"] if c == "wall_time_s" else group["test"].get(AGG_FACTS.get(c, c))
            cells.append(mean_std(stat, c))
        if target:
            cells += target_cells(group)
        out.append("| " + " | ".join(cells) + " |")
    if ranking.get("text"):
        out += ["", f"**Ranking:** {ranking['text']}."]
    return out
