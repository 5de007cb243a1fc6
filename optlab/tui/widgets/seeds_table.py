"""The configurations table of an experiment with repeated seeds: per configuration in ranking
order, its rank (`1=`: not distinguishable from rank 1), n and its seeds, then mean ± sample
std of each test metric, the best mean of each column in bold green;
and the ranking verdict under it. The numbers are the `aggregates` of results.json. While
training runs, the same table shows each configuration's progress and the mean ± std of its
seeds' best validation value so far (`show_live`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from optlab.runs.aggregate import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    aggregate,
    ranked_groups,
    seed_of,
    stats,
)
from optlab.runs.formatting import DROP_ORDER, fit_columns, format_rate, header
from optlab.runs.grouping import Grouping
from optlab.runs.palette import rich_color, run_color
from optlab.runs.reports import HIGHER_IS_BETTER, LOWER_IS_BETTER, comparison_warnings
from optlab.runs.seed_reports import compact_mean_std, mean_std, rank_text
from optlab.tui.state import BEST_LABELS, ExperimentState
from optlab.tui.widgets.tables import SortableTable, sort_key

LIVE_COLUMNS = ("group", "n", "seeds", "epoch", "status", "best", "rate")
AGG_KEY = {"test_loss": "loss"}  # table column -> key in an aggregate group's "test"
VERDICT_STYLES = {"distinguishable": "bold green", "not distinguishable": "bold yellow", "cannot tell": "yellow"}


def aggregates_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The document's aggregates (results.json has them; a live fold recomputes them at each
    run end), or computed now."""
    return doc.get("aggregates") or aggregate(doc)


def group_columns(task: str) -> tuple[str, ...]:
    metrics = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    tested = tuple("test_loss" if m == "loss" else m for m in metrics)
    return ("rank", "group", "n", "seeds", *tested, "wall_time_s")


FIRST_STAT = 4  # the columns before it are rank, configuration, n and seeds
# The seeds' numbers go first (the runs table lists them), then the report's least telling columns.
SEEDS_DROP_ORDER = ("seeds", *DROP_ORDER)


def stat_of(group: dict[str, Any], column: str) -> dict[str, Any] | None:
    if column == "wall_time_s":
        return group.get("wall_time_s")
    return (group.get("test") or {}).get(AGG_KEY.get(column, column))


def stat_text(group: dict[str, Any], column: str, compact: bool = False) -> str:
    """`0.9712 ± 0.0031` (compact: `0.9712±0.0031`); the metric's own n when it differs from the
    configuration's (a seed whose value is undefined, say a ROC-AUC with one class present)."""
    stat = stat_of(group, column)
    text = compact_mean_std(stat, column) if compact else mean_std(stat, column)
    if stat and stat.get("mean") is not None and stat.get("n") != group.get("n"):
        text += f" (n={stat['n']})"
    return text


def n_text(group: dict[str, Any]) -> str:
    """Tested seeds; "2 of 3" when a seed diverged or failed (it counts in no mean)."""
    total = len(group.get("runs") or [])
    return str(group["n"]) if group["n"] == total else f"{group['n']} of {total}"


def best_means(groups: list[dict[str, Any]], cols: tuple[str, ...]) -> dict[str, set[str]]:
    """The configurations holding the best mean of each ranked column (with two or more)."""
    best: dict[str, set[str]] = {}
    for column in cols:
        if column not in HIGHER_IS_BETTER and column not in LOWER_IS_BETTER:
            continue
        values = [(s["mean"], g["group"]) for g in groups if (s := stat_of(g, column)) and s.get("mean") is not None]
        if len(values) < 2:
            continue
        target = (max if column in HIGHER_IS_BETTER else min)(v for v, _ in values)
        best[column] = {name for v, name in values if v == target}
    return best


def ranking_text(doc: dict[str, Any]) -> Text:
    ranking = (aggregates_of(doc) or {}).get("ranking") or {}
    if not ranking.get("text"):
        return Text("")
    text = Text("ranking: ", style="bold")
    text.append(str(ranking["text"]), style=VERDICT_STYLES.get(str(ranking.get("verdict")), ""))
    return text


class SeedsTable(SortableTable):
    """One row per configuration (row key: the group name); sortable like the final table."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fixed_columns = 2  # the rank and the configuration's name stay in view
        self.groups: list[dict[str, Any]] = []
        self.hidden: list[str] = []  # columns left out to fit the width (named by the ranking line)
        self.compact = False  # whether the cells are compact (`0.9712±0.0031`) to fit the width

    def show(self, doc: dict[str, Any]) -> None:
        aggregates = aggregates_of(doc) or {}
        task = str((doc.get("dataset") or {}).get("task") or "multiclass")
        grouping = Grouping.from_doc(doc)
        selected = self.selected()
        self.cols = group_columns(task)
        # Ranking order (the Welch-test ranks of results.json) unless a column is sorted.
        ranked = ranked_groups({**doc, "aggregates": aggregates}) if aggregates else []
        ranks = {str(g["group"]): rank for g, rank in ranked}
        self.groups = [g for g, _ in ranked]
        best = best_means(self.groups, self.cols)
        rows = list(self.groups)
        if self.sort_column is not None:
            column = self.sort_column
            if column == "rank":
                rows.reverse() if self.reverse else None
            elif column == "group":
                rows.sort(key=lambda g: g["group"], reverse=self.reverse)
            else:
                rows.sort(key=lambda g: sort_key(column, (stat_of(g, column) or {}).get("mean")), reverse=self.reverse)
        labels = {c: self._label(c) for c in self.cols}
        available = (self.size.width or self.app.size.width) - 2  # the vertical scrollbar
        # Fit the terminal: compact `±` cells first, then give up the least telling columns
        # (named under the table) rather than let the last ones, time among them, scroll away.
        for compact in (False, True):
            all_cells = [self._cells(group, ranks, grouping, best, compact) for group in rows]
            widths = {c: max([cell_len(labels[c])] + [cell_len(str(cells[c])) for cells in all_cells])
                      for c in self.cols}
            kept, self.hidden = fit_columns(widths, available, SEEDS_DROP_ORDER)
            self.compact = compact
            if not self.hidden:
                break
        self.clear(columns=True)
        for column in kept:
            self.add_column(labels[column], key=column)
        for group, cells in zip(rows, all_cells, strict=True):
            self.add_row(*(cells[c] for c in kept), key=str(group["group"]))
        names = [str(g["group"]) for g in rows]
        if selected in names:
            self.move_cursor(row=names.index(selected))

    def _cells(self, group: dict[str, Any], ranks: dict[str, Any], grouping: Grouping,
               best: dict[str, set[str]], compact: bool) -> dict[str, Any]:
        name = str(group["group"])
        first = grouping.first_run(name) or name
        cells: dict[str, Any] = {
            "rank": Text(rank_text(ranks.get(name))),
            "group": Text.assemble(("██ ", rich_color(run_color(grouping.color_index(first)))), name),
            "n": Text(n_text(group), justify="right"),
            "seeds": ", ".join(str(s) for s in group.get("seeds") or []),
        }
        for column in self.cols[FIRST_STAT:]:
            style = "bold green" if name in best.get(column, ()) else ""
            cells[column] = Text(stat_text(group, column, compact), style=style, justify="right")
        return cells

    def _label(self, column: str) -> str:
        label = {"group": "configuration", "rank": "rank"}.get(column) or header(column)
        if column == self.sort_column:
            label += " ▲" if self.reverse else " ▼"
        return label

    def sortable_columns(self) -> list[str]:
        hidden = set(self.hidden)  # a column out of sight cannot be the one sorted by
        return [c for c in self.cols if (c in HIGHER_IS_BETTER or c in LOWER_IS_BETTER or c in ("rank", "group"))
                and c not in hidden]

    def show_live(self, state: ExperimentState) -> None:
        """The configurations while training runs (not sortable: the order moves under the cursor)."""
        selected = self.selected()
        grouping = state.grouping
        self.cols, self.sort_column = (), None
        self.clear(columns=True)
        best = BEST_LABELS[state.val_key]
        titles = {"group": "configuration", "best": f"{best} (mean ± std)", "rate": "samples/s"}
        for column in LIVE_COLUMNS:
            self.add_column(titles.get(column, column), key=column)
        for group, names in grouping.groups.items():
            cells = live_cells(state, names)
            swatch = rich_color(run_color(grouping.color_index(names[0])))
            self.add_row(
                Text.assemble(("██ ", swatch), group),
                Text(cells["n"], justify="right"),
                ", ".join("?" if seed is None else str(seed) for seed in (seed_of(state.run(n)) for n in names)),
                cells["epoch"],
                cells["status"],
                Text(cells["best"], justify="right"),
                Text(cells["rate"], justify="right"),
                key=group,
            )
        if selected in grouping.groups:
            self.move_cursor(row=list(grouping.groups).index(selected))


def live_cells(state: ExperimentState, names: list[str]) -> dict[str, str]:
    """A configuration while it trains: its seeds' epochs and statuses, and mean ± std (n) of
    their best validation value so far (accuracy, or RMSE for regression)."""
    runs = [state.run(name) for name in names]
    epochs = [
        (run.get("progress") or {}).get("epoch") or run.get("epochs_completed") or 0
        if run.get("status") == "running"
        else run.get("epochs_completed") or 0
        for run in runs
    ]
    total = next((run["config"].get("epochs") for run in runs if run.get("config")), None)
    span = f"{min(epochs)}" if min(epochs) == max(epochs) else f"{min(epochs)}–{max(epochs)}"
    best = stats(state.best_val(name) for name in names)
    rates = stats((run.get("progress") or {}).get("samples_per_s") for run in runs if run.get("status") == "running")
    statuses = Counter(str(run.get("status", "pending")) for run in runs)
    return {
        "n": str(best["n"]) if best["n"] == len(names) else f"{best['n']} of {len(names)}",
        "epoch": f"{span}/{total}" if total else span,
        "status": ", ".join(f"{n} {status}" for status, n in statuses.items()),
        "best": mean_std(best, state.val_key),
        "rate": format_rate(rates["mean"]) if rates["mean"] else "-",
    }


class RankingLine(Static):
    """Under the end tables: the ranking verdict on the top two configurations (with repeated
    seeds), and what makes some columns unfair across runs (GPU models, gradient evaluations)."""

    def show(self, doc: dict[str, Any], hidden: Sequence[str] = (), repeats: bool = True) -> None:
        text = ranking_text(doc) if repeats else Text()
        for warning in comparison_warnings(doc):
            text.append(("\n" if text.plain else "") + f"warning: {warning}", style="yellow")
        if hidden:
            text.append(f"\nhidden for width: {', '.join(header(c) for c in hidden)} "
                        "(wider terminal, or optlab report -f markdown)", style="dim")
        self.update(text)
