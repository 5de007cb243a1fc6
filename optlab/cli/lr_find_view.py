"""`lr-find` on the terminal: one table row per run and, on a terminal, each run's curve as a
braille chart of loss against log10(lr) with the range and the suggestion marked (the TUI's
renderer, `optlab.tui.widgets.braille`, which needs rich only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from optlab.runs.lr_find_report import lr_text, range_text
from optlab.runs.palette import rich_color, run_color

if TYPE_CHECKING:
    from rich.console import Console

CHART_HEIGHT = 10
RAW, SMOOTHED, RANGE, SUGGESTION = 244, 39, 40, 220
CONFIDENCE_STYLES = {"high": "green", "low": "yellow"}
STOPPED_MIN = 10  # the stop reason wraps, in words, within at least this width
HEADERS = ("run", "lr", "range", "min at", "conf", "stopped", "n")


def _layout(doc: dict[str, Any], width: int) -> tuple[list[list[str]], list[int], bool, int]:
    """The table's cells, each column's width, whether the stop reasons fit in the table, and
    the run names' width. Numbers and run names are never cut or wrapped (a name broken over
    two lines reads as two runs): when the names do not fit whole beside a stop reason of at
    least STOPPED_MIN columns, the reasons go below the table; only a name too long for the
    table even then (names may have 100 characters) ends in an ellipsis."""
    rows = [
        [run["name"], lr_text(run["suggestion"]), range_text(run["range"]), lr_text(run["min_loss_lr"]),
         run["confidence"], run["stopped"], str(len(run["points"]))]
        for run in doc["runs"]
    ]
    widest = [max([len(h), *(len(r[k]) for r in rows)]) for k, h in enumerate(HEADERS)]
    # Between two columns: a cell's padding each side and the box's divider; the box's two edges.
    numbers = sum(widest[1:5]) + widest[6] + 3 * (len(HEADERS) - 2) + 2
    with_stopped = widest[0] <= width - numbers - STOPPED_MIN - 3
    room = width - numbers - (STOPPED_MIN + 3 if with_stopped else 0)
    return rows, widest, with_stopped, max(3, min(widest[0], room))


def lr_find_table(doc: dict[str, Any], width: int = 80) -> Table:
    rows, widest, with_stopped, name_width = _layout(doc, width)
    table = Table(
        header_style="bold", title=f"LR range test: {doc['preset']}", box=box.SIMPLE_HEAD, pad_edge=False,
        caption="lr: the suggestion; min at: the lr of the smoothed minimum; n: points",
    )
    table.add_column("run", no_wrap=True, overflow="ellipsis", min_width=name_width, max_width=name_width)
    for k, column in enumerate(("lr", "range", "min at"), start=1):
        table.add_column(column, justify="right", no_wrap=True, min_width=widest[k])
    table.add_column("conf", no_wrap=True, min_width=widest[4])
    if with_stopped:
        table.add_column("stopped", overflow="fold", min_width=STOPPED_MIN)
    table.add_column("n", justify="right", no_wrap=True, min_width=widest[6])
    for i, (name, lr, span, at, confidence, stopped, n) in enumerate(rows):
        cells: list[Text | str] = [Text(name, style=rich_color(run_color(i))),  # its colour in the TUI's chart
                 lr, span, at, Text(confidence, style=CONFIDENCE_STYLES.get(confidence, ""))]
        table.add_row(*cells, *([stopped] if with_stopped else []), n)
    return table


def curve_chart(run: dict[str, Any], width: int, height: int = CHART_HEIGHT) -> Text:
    from optlab.tui.widgets.braille import Trace, render

    points = run["points"]
    xs = [math.log10(p["lr"]) for p in points]
    raw = [p["loss"] for p in points]
    smooth = [p["smoothed"] for p in points]
    if not xs:
        return Text("(no points)")
    lo, hi = min(smooth), max(smooth[0], min(smooth) + 1e-9)
    # The stop rule lets the tail climb to 4x the best: cap the axis a little above the start.
    top = hi + 0.25 * (hi - lo)
    traces = [Trace(xs, raw, RAW), Trace(xs, smooth, SMOOTHED)]
    if run["range"]:
        a, b = (math.log10(v) for v in run["range"])
        traces.append(Trace([a, b], [lo, lo], RANGE))
    marked = run["suggestion"] or run.get("median_suggestion")
    if marked and run["suggestion"]:
        x = math.log10(marked)
        traces.append(Trace([x] * height, [lo + (top - lo) * k / (height - 1) for k in range(height)], SUGGESTION, marker="┃"))
    return render(traces, width, height, x_label="log10 lr", y_top=top)


def print_lr_find(console: Console, doc: dict[str, Any]) -> None:
    console.print(lr_find_table(doc, console.width))
    below = not _layout(doc, console.width)[2]
    for run in doc["runs"]:
        for note in [f"stopped: {run['stopped']}" if below else "", run["detail"], *run["notes"]]:
            if note:
                console.print(Text.assemble((f"{run['name']}: ", "bold"), note), highlight=False)
    if not console.is_terminal:
        return
    width = max(20, min(console.width, 100))
    for run in doc["runs"]:
        label = f"suggestion {lr_text(run['suggestion'])}" if run["suggestion"] else "no suggestion (confidence low)"
        console.print(Text.assemble((run["name"], "bold"), f"  {label}; range in green, suggestion in yellow"))
        console.print(curve_chart(run, width))
