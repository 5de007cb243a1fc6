"""The comparison table for the terminal (Rich), built from the same rows as the reports.

The reports module (and numpy behind it) is imported on first use, so `presets list` and
`runs` stay light."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from optlab.runs.formatting import DROP_ORDER, dataset_title
from optlab.runs.palette import STATUS_STYLES, rich_color, run_color

BEST_STYLE = "bold green"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def results_table(results: dict[str, Any], hide: Collection[str] = ()) -> Table:
    """The comparison table: the columns of `summary_rows` (less `hide`), best values highlighted."""
    from optlab.runs.formatting import format_cell, header, positive_class, task_of
    from optlab.runs.grouping import Grouping
    from optlab.runs.reports import (
        best_per_column,
        comparison_warnings,
        dataset_summary,
        report_columns,
        summary_rows,
    )

    task = task_of(results)
    cols = [c for c in report_columns(results) if c not in hide]
    rows = summary_rows(results)
    best = best_per_column(rows, task, tuple(cols))
    preset = (results.get("preset") or {}).get("name", "unnamed")
    dataset = results.get("dataset") or {}
    caption = dataset_summary(dataset)
    if best:
        caption += f"; best of each column in {BEST_STYLE}"
    positive = positive_class(results)
    if positive:
        caption += f"; {positive}"
    if hide:
        caption += f"; hidden for width: {', '.join(header(c) for c in hide)} (see --format markdown)"
    for warning in comparison_warnings(results):
        caption += f"\nwarning: {warning}"
    table = Table(
        title=f"{preset}: {dataset_title(dataset)} on {results.get('device') or '?'}",
        caption=caption,
        header_style="bold",
    )
    for c in cols:
        numeric = c not in ("name", "status")
        table.add_column(header(c), justify="right" if numeric else "left", no_wrap=True)
    grouping = Grouping.from_doc(results)  # a run's colour: the same in the TUI and the charts
    for row in rows:
        cells: list[Text] = []
        for c in cols:
            if c == "status":
                cells.append(status_text(str(row[c])))
                continue
            if c == "name":
                cells.append(Text(format_cell(row, c), style=f"bold {rich_color(run_color(grouping.color_index(row['name'])))}"))
                continue
            style = BEST_STYLE if row["name"] in best.get(c, ()) else ""
            cells.append(Text(format_cell(row, c), style=style))
        table.add_row(*cells)
    return table


def seeds_table(results: dict[str, Any], hide: Collection[str] = ()) -> Table | None:
    """Configurations in ranking order with their rank, mean ± std and n of each test metric
    (less `hide`) and, with a target, how many seeds reached it and when; the ranking verdict in
    the caption. None without repeated seeds."""
    from optlab.runs.aggregate import groups as groups_of
    from optlab.runs.aggregate import ranked_groups
    from optlab.runs.formatting import CLASSIFICATION_METRICS, REGRESSION_METRICS, header, target_of, task_of
    from optlab.runs.seed_reports import RANK_LEGEND, mean_std, rank_text, target_cells, target_headers

    aggregates = results.get("aggregates")
    if not aggregates:
        return None
    metrics = REGRESSION_METRICS if task_of(results) == "regression" else CLASSIFICATION_METRICS
    cols = [c for c in (*metrics, "test_loss") if c not in hide]
    target = target_of(results)
    ranking = aggregates.get("ranking") or {}
    verdict = ranking.get("verdict", "")
    caption = f"mean ± sample std (ddof = {aggregates.get('std_ddof', 1)}) over seeds"
    if ranking.get("text"):
        caption += f"; ranking: {ranking['text']}"
    rows = ranked_groups(results)
    caption += f"; ranked by mean {ranking.get('metric', 'accuracy')}"
    if any(rank_text(rank)[-1] in "=?" for _, rank in rows):  # the legend only when it is needed
        caption += f"; {RANK_LEGEND.replace('`', '')}"
    if hide:
        caption += f"; hidden for width: {', '.join(header(c) for c in hide)} (see --format markdown)"
    table = Table(title="across seeds", caption=caption, header_style="bold")
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("configuration", no_wrap=True)
    table.add_column("n", justify="right")
    for c in cols:
        table.add_column(header(c), justify="right", no_wrap=True)
    for head in target_headers() if target else []:
        table.add_column(head, justify="right", no_wrap=True)
    colors = {name: i for i, name in enumerate(groups_of(results))}  # the TUI's and the charts' colours
    for group, rank in rows:
        # Only a winner the test tells apart from the runner-up is highlighted.
        top = verdict == "distinguishable" and rank is not None and rank["rank"] == 1
        color = rich_color(run_color(colors.get(group["group"], 0)))
        cells = [Text(rank_text(rank), style=BEST_STYLE if top else ""),
                 Text(group["group"], style=BEST_STYLE if top else f"bold {color}"), Text(str(group["n"]))]
        for c in cols:
            cells.append(Text(mean_std(group["test"].get("loss" if c == "test_loss" else c), c)))
        if target:
            cells += [Text(cell) for cell in target_cells(group)]
        table.add_row(*cells)
    return table


def natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(10_000), table).maximum


def print_table(console: Console, table: Table) -> None:
    """Print without squeezing: when the output is not a terminal (a pipe, a file, a test),
    widen the console to the table's natural width so no value is cut."""
    if not console.is_terminal:
        console.width = max(console.width, natural_width(console, table))
    console.print(table)


def print_results(console: Console, results: dict[str, Any]) -> None:
    """The results table, then (with repeated seeds) the across-seeds table; on a terminal too
    narrow for one, its least telling columns are left out (and named in the caption) rather
    than any number being cut."""
    for build in (results_table, seeds_table):
        table = _fitted(console, results, build)
        if table is not None:
            print_table(console, table)


def _fitted(
    console: Console, results: dict[str, Any], build: Callable[[dict[str, Any], Collection[str]], Table | None]
) -> Table | None:
    """`build(results, hidden)` with the columns of DROP_ORDER hidden one by one until the
    table fits a terminal (all of them kept when the output is not a terminal)."""
    hidden: list[str] = []
    table = build(results, hidden)
    if table is None or not console.is_terminal:
        return table
    for column in DROP_ORDER:
        if natural_width(console, table) <= console.width:
            break
        if any(col.header == _header(column) for col in table.columns):
            hidden.append(column)
            table = build(results, list(hidden))
            assert table is not None  # the same document: a table again
    return table


def _header(column: str) -> str:
    from optlab.runs.formatting import header

    return header(column)
