"""One run in full: test metrics per class, confusion matrix, config and fingerprints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from optlab.runs.formatting import format_duration
from optlab.runs.reports import config_summary
from optlab.tui.widgets.tables import status_text


def _f(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def per_class_table(test: dict[str, Any]) -> Table | None:
    per = test.get("per_class")
    if not per:
        return None
    table = Table(title="per class", title_justify="left", expand=False)
    for col in ("class", "precision", "recall", "f1", "specificity", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(per.get("names") or []):
        table.add_row(
            str(name),
            *(_f(per[k][i]) for k in ("precision", "recall", "f1", "specificity")),
            str(per["support"][i]),
        )
    return table


def confusion_table(test: dict[str, Any]) -> Table | None:
    matrix = test.get("confusion_matrix")
    if not matrix:
        return None
    names = (test.get("per_class") or {}).get("names") or [str(i) for i in range(len(matrix))]
    table = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    table.add_column("", style="bold")
    for name in names:
        table.add_column(str(name), justify="right")
    for i, row in enumerate(matrix):
        cells = [Text(str(v), style="bold green" if i == j and v else ("red" if v else "dim")) for j, v in enumerate(row)]
        table.add_row(str(names[i]), *cells)
    return table


def summary_text(run: dict[str, Any], task: str) -> Text:
    test = run.get("test") or {}
    text = Text()
    text.append(f"{run.get('name', '?')}  ", style="bold")
    text.append_text(status_text(str(run.get("status", "?"))))
    if run.get("reason"):
        text.append(f"  ({run['reason']})", style="dim")
    text.append("\n" + config_summary(run.get("config") or {}) + "\n")
    facts = [
        f"parameters {run['n_params']:,}" if run.get("n_params") else None,
        f"epochs completed {run.get('epochs_completed', 0)}",
        f"best epoch {run['best_epoch']}" if run.get("best_epoch") else None,
        f"wall time {format_duration(float(run.get('wall_time_s') or 0.0))}",
    ]
    text.append(" · ".join(f for f in facts if f) + "\n")
    text.append(
        f"fingerprints: init {run.get('init_fingerprint') or '-'} · data order {run.get('data_fingerprint') or '-'}\n",
        style="dim",
    )
    if test:
        keys = ("mse", "rmse", "mae", "r2", "loss") if task == "regression" else (
            "accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "loss"
        )
        text.append("test: " + "  ".join(f"{k} {_f(test.get(k))}" for k in keys) + "\n", style="bold")
        if test.get("average"):
            text.append(f"({test['average']} average over {test.get('n', '?')} test samples)\n", style="dim")
        if test.get("roc_auc_note"):
            text.append(f"note: {test['roc_auc_note']}\n", style="yellow")
    else:
        text.append("no test metrics (the run was not tested)\n", style="yellow")
    for note in run.get("notes") or []:
        text.append(f"note: {note}\n", style="yellow")
    return text


class DetailsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,backspace", "app.pop_screen", "back")]

    def __init__(self, run: dict[str, Any], task: str, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_doc = run
        self.run_task = task
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        run = self.run_doc
        test = run.get("test") or {}
        with VerticalScroll(id="details"):
            yield Static(summary_text(run, self.run_task), id="details-summary")
            for table in (per_class_table(test), confusion_table(test)):
                if table is not None:
                    yield Static(table, classes="details-table")
            log = self.run_dir / "runs" / str(run.get("name")) / "log.txt" if self.run_dir else None
            if log is not None and log.is_file():
                yield Static(Text("log.txt\n", style="bold") + Text(log.read_text(errors="replace")[-4000:]))
            config = json.dumps(run.get("config") or {}, indent=2)
            yield Static(Text("full config\n", style="bold") + Text(config, style="dim"), id="details-config")
        yield Footer()
