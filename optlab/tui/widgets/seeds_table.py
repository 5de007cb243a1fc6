"""The configurations table of an experiment with repeated seeds: per configuration in ranking
order, its rank (`1=`: not distinguishable from rank 1), n and its seeds, then mean ± sample
std of each test metric, the best mean of each column in bold green;
and the ranking verdict under it. The numbers are the `aggregates` of results.json. While
training runs, the same table shows each configuration's progress and the mean ± std of its
seeds' best validation value so far (`show_live`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

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
from optlab.runs.formatting import format_rate, header
from optlab.runs.grouping import Grouping
from optlab.runs.palette import rich_color, run_color
from optlab.runs.reports import HIGHER_IS_BETTER, LOWER_IS_BETTER
from optlab.runs.seed_reports import mean_std, rank_text
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


def stat_of(group: dict[str, Any], column: str) -> dict[str, Any] | None:
    if column == "wall_time_s":
        return group.get("wall_time_s")
    return (group.get("test") or {}).get(AGG_KEY.get(column, column))


def stat_text(group: dict[str, Any], column: str) -> str:
    """`0.9712 ± 0.0031`; the metric's own n when it differs from the configuration's (a seed
    whose value is undefined, say a ROC-AUC with one class present)."""
    stat = stat_of(group, column)
    text = mean_std(stat, column)
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
        self.clear(columns=True)
        for column in self.cols:
            label = {"group": "configuration", "rank": "rank"}.get(column) or header(column)
            if column == self.sort_column:
                label += " ▲" if self.reverse else " ▼"
            self.add_column(label, key=column)
        for group in rows:
            name = str(group["group"])
            first = grouping.first_run(name) or name
            cells: list[Any] = [Text(rank_text(ranks.get(name))),
                                Text.assemble(("██ ", rich_color(run_color(grouping.color_index(first)))), name),
                                Text(n_text(group), justify="right"),
                                ", ".join(str(s) for s in group.get("seeds") or [])]
            for column in self.cols[FIRST_STAT:]:
                style = "bold green" if name in best.get(column, ()) else ""
                cells.append(Text(stat_text(group, column), style=style, justify="right"))
            self.add_row(*cells, key=name)
        names = [str(g["group"]) for g in rows]
        if selected in names:
            self.move_cursor(row=names.index(selected))

    def sortable_columns(self) -> list[str]:
        return [c for c in self.cols if c in HIGHER_IS_BETTER or c in LOWER_IS_BETTER or c in ("rank", "group")]

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
    """The ranking verdict on the top two configurations, under the tables."""

    def show(self, doc: dict[str, Any]) -> None:
        self.update(ranking_text(doc))
