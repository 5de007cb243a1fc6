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


def lr_find_table(doc: dict[str, Any]) -> Table:
    # Fits 80 columns: numbers are never cut or wrapped, the run name and stop reason give way.
    table = Table(
        header_style="bold", title=f"LR range test: {doc['preset']}", box=box.SIMPLE_HEAD, pad_edge=False,
        caption="lr: the suggestion; min at: the lr of the smoothed minimum; n: points",
    )
    table.add_column("run", overflow="fold")
    for column in ("lr", "range", "min at"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("conf", no_wrap=True)
    table.add_column("stopped", overflow="fold")
    table.add_column("n", justify="right", no_wrap=True)
    for i, run in enumerate(doc["runs"]):
        table.add_row(
            Text(run["name"], style=rich_color(run_color(i))),  # its colour in the TUI's chart
            lr_text(run["suggestion"]),
            range_text(run["range"]),
            lr_text(run["min_loss_lr"]),
            Text(run["confidence"], style=CONFIDENCE_STYLES.get(run["confidence"], "")),
            run["stopped"],
            str(len(run["points"])),
        )
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
    console.print(lr_find_table(doc))
    for run in doc["runs"]:
        for note in [run["detail"], *run["notes"]]:
            if note:
                console.print(Text.assemble((f"{run['name']}: ", "bold"), note), highlight=False)
    if not console.is_terminal:
        return
    width = max(20, min(console.width, 100))
    for run in doc["runs"]:
        label = f"suggestion {lr_text(run['suggestion'])}" if run["suggestion"] else "no suggestion (confidence low)"
        console.print(Text.assemble((run["name"], "bold"), f"  {label}; range in green, suggestion in yellow"))
        console.print(curve_chart(run, width))
