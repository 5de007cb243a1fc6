"""The cells of the report tables: which metrics a task has, what each column is headed, and how
each value reads (4 decimals, 12.3s, 41.2k).

Shared by the per-run table (`optlab.runs.reports`), the across-seeds section
(`optlab.runs.seed_reports`) and the console and TUI tables, so that they all write a number the
same way. It sits below both report modules and imports nothing of optlab: reports builds on
seed_reports, and neither has to reach back into the other for these helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")

# Shown when the preset sets a `target`: when each run first reached it.
TARGET_COLUMNS = ("target_epoch", "target_samples", "target_time_s")

HEADERS = {
    "name": "run",
    "test_loss": "test loss",
    "best_epoch": "best epoch",
    "wall_time_s": "time",
    "samples_per_s": "samples/s",
    "roc_auc": "roc auc",
    "target_epoch": "target epoch",
    "target_samples": "target samples",
    "target_time_s": "target time",
}


def task_of(results: dict[str, Any]) -> str:
    return str((results.get("dataset") or {}).get("task") or "multiclass")


def positive_class(results: dict[str, Any]) -> str | None:
    """For a binary task, which class precision, recall, F1 and specificity are about: label 1
    (`metrics/scores.py`, as scikit-learn's `pos_label=1`), named, since a dataset's label order
    is its own (scikit-learn's breast-cancer labels benign 1, malignant 0). None otherwise."""
    if task_of(results) != "binary":
        return None
    names = (results.get("dataset") or {}).get("class_names") or []
    for run in results.get("runs") or []:  # a document from before datasets kept their names
        names = names or ((run.get("test") or {}).get("per_class") or {}).get("names") or []
    name = str(names[1]) if len(names) == 2 and str(names[1]) != "1" else ""
    label = f"{name} (label 1)" if name else "label 1"
    return f"positive class (precision, recall, F1, specificity): {label}"


def target_of(results: dict[str, Any]) -> dict[str, Any] | None:
    target = (results.get("preset") or {}).get("target")
    return target if isinstance(target, dict) else None


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        minutes, sec = divmod(int(round(seconds)), 60)
        return f"{minutes}m {sec:02d}s"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h {rest // 60:02d}m"


def dataset_title(dataset: dict[str, Any]) -> str:
    """A dataset's name for titles: a file dataset's stem (`houses` for houses.csv, recorded as
    `title`) rather than its reader's name (`csv`), which would title every CSV experiment alike."""
    return str(dataset.get("title") or dataset.get("name", "?"))


def format_rate(value: float) -> str:
    """One form at every size: 950, 5.7k, 14.3k, 1.2M (never 5,700 beside 14.3k). The
    thresholds are where rounding would reach the next unit (999.6 is 1.0k, not 1,000)."""
    if value >= 999_950:
        return f"{value / 1e6:.1f}M"
    if value >= 999.5:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def format_value(column: str, value: Any) -> str:
    """Display form of one cell: metrics with 4 decimals, times like 12.3s, rates like 41.2k."""
    if value is None:
        return "-"
    if column in ("name", "status"):
        return str(value)
    if column in ("best_epoch", "target_epoch"):
        return str(int(value))
    if column == "target_samples":
        return f"{int(value):,}"
    if column == "target_time_s":
        return format_duration(float(value))
    if column == "wall_time_s":
        return format_duration(float(value))
    if column == "samples_per_s":
        return format_rate(float(value))
    return f"{float(value):.4f}"


def format_cell(row: dict[str, Any], column: str) -> str:
    """`format_value` of a row's cell; a target a run never reached reads "not reached"."""
    if column in TARGET_COLUMNS and row.get("target_reached") is False:
        return "not reached"
    return format_value(column, row.get(column))


def header(column: str) -> str:
    return HEADERS.get(column, column)


# Columns given up first when a terminal is too narrow for a whole table (numbers are never cut).
DROP_ORDER = (
    "specificity",
    "precision",
    "recall",
    "samples_per_s",
    "best_epoch",
    "rmse",
    "roc_auc",
    "f1",
    "mae",
    "wall_time_s",
    "test_loss",
)


def fit_columns(
    widths: dict[str, int], available: int, drop_order: Sequence[str] = DROP_ORDER, gap: int = 2
) -> tuple[list[str], list[str]]:
    """The columns (in their order) that fit `available` cells, each `gap` apart, giving up
    those of `drop_order` one by one; returns them and the hidden ones (to be named)."""
    kept, hidden = list(widths), []
    for column in drop_order:
        if sum(widths[c] + gap for c in kept) <= available:
            break
        if column in kept:
            kept.remove(column)
            hidden.append(column)
    return kept, hidden
