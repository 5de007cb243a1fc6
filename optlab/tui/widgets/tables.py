"""The live runs table and the final test-metrics table."""

from __future__ import annotations

import socket
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from optlab.runs.formatting import fit_columns, format_rate, format_value, header
from optlab.runs.grouping import Grouping
from optlab.runs.palette import FADED, STATUS_STYLES, rich_color, run_color
from optlab.runs.reports import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    best_per_column,
    columns,
    summary_rows,
)
from optlab.tui.state import ExperimentState, format_eta

# What changes while training comes first, so that an 80-column terminal shows it without
# scrolling; the configuration (fixed for the whole run) follows.
RUN_COLUMNS = (
    ("swatch", " "),
    ("name", "run"),
    ("epoch", "epoch"),
    ("status", "status"),
    ("best", "best val"),
    ("rate", "samples/s"),
    ("eta", "ETA"),
    ("where", "where"),
    ("optimizer", "optimizer"),
    ("scheduler", "scheduler"),
    ("batch", "batch"),
    ("step", "step"),
)


def where_text(placement: dict[str, Any] | None) -> str:
    """Where a run trains: its device, and the host when it is another machine (a Ray node)."""
    if not placement:
        return "-"
    device = str(placement.get("device") or "?")
    host = placement.get("host")
    return device if not host or host == socket.gethostname() else f"{device}@{host}"


def status_text(status: str) -> Text:
    # `waiting` is the TUI's word for a run still pending while the experiment runs.
    return Text(status.replace("_", " "), style=STATUS_STYLES.get("pending" if status == "waiting" else status, ""))


def progress_bar(fraction: float, width: int = 6) -> str:
    fraction = min(1.0, max(0.0, fraction))
    cells = fraction * width
    full = int(cells)
    partial = " ▏▎▍▌▋▊▉"[int((cells - full) * 8)] if full < width else ""
    return ("█" * full + partial).ljust(width, " ")


def _short_number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def run_cells(
    state: ExperimentState, name: str, index: int, highlight: str | None, key: str | None = None
) -> dict[str, Any]:
    """The cells of one run's row in the live table. `index` is the colour's, `key` what the run
    is highlighted by (its configuration when seeds are repeated; the run itself otherwise)."""
    key = name if key is None else key
    run = state.run(name)
    config = run.get("config") or {}
    series = state.run_series(name)
    progress = run.get("progress") or {}
    color = FADED if highlight and highlight != key else run_color(index)
    opt = config.get("optimizer") or {}
    sched = config.get("scheduler") or {}
    epochs = config.get("epochs")
    step = progress.get("step") or (series.epochs[-1].step if series.epochs else 0)
    total = series.total_steps or run.get("total_steps") or 0
    status = run.get("status", "pending")
    if status == "pending" and state.doc.get("status") == "running":
        # Announced and not started while the experiment runs: it has no worker or resources
        # yet (a Ray actor waiting for a GPU, a worker still importing torch).
        status = "waiting"
    fraction = 1.0 if status == "finished" else (step / total if total else 0.0)
    epoch_now = run.get("epochs_completed") or 0
    if status == "running" and progress.get("epoch"):
        epoch_now = progress["epoch"]
    epoch_text = f"{epoch_now}/{epochs}" if epochs else "-"
    best = state.best_val(name)
    rate = progress.get("samples_per_s") or run.get("train_samples_per_s") or 0.0
    eta = state.eta_s(name) if status == "running" else None
    return {
        "swatch": Text("██", style=rich_color(color)),
        "name": Text(name, style="bold" if highlight == key else ("dim" if highlight else "")),
        "optimizer": f"{opt.get('name', '?')} {_short_number(opt.get('lr', ''))}" if opt else "-",
        "scheduler": str(sched.get("name", "-")) if sched else "-",
        "batch": str(config.get("batch_size", "-")),
        "epoch": f"{epoch_text:>7} {progress_bar(fraction)}",
        "step": str(step),
        "status": status_text(status),
        "rate": format_rate(float(rate)) if rate else "-",
        "best": "-" if best is None else f"{best:.4f}",
        "eta": format_eta(eta) if status == "running" else "",
        "where": where_text(run.get("placement")),
    }


class RowTable(DataTable):
    """A table whose row keys are names (of runs or configurations), one selected at a time."""

    def selected(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)

    def cell_text(self, name: str, column: str) -> str:
        return str(self.get_cell(name, column)).removeprefix("██ ")


class SortableTable(RowTable):
    """An end table filled from the results document by `show`, sorted by `o` (the next
    sortable column, best first) or by clicking a header (twice reverses)."""

    def __init__(self, **kwargs: Any) -> None:
        # The first column names the row: it stays in view while a narrow terminal scrolls right.
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=1, **kwargs)
        self.cols: tuple[str, ...] = ()
        self.sort_column: str | None = None
        self.reverse = False

    def show(self, doc: dict[str, Any]) -> None:
        raise NotImplementedError

    def sortable_columns(self) -> list[str]:
        raise NotImplementedError

    def cycle_sort(self, doc: dict[str, Any]) -> None:
        options: list[str | None] = [None, *self.sortable_columns()]
        index = options.index(self.sort_column) if self.sort_column in options else 0
        self.sort_column = options[(index + 1) % len(options)]
        self.reverse = False
        self.show(doc)

    def sort_by(self, column: str, doc: dict[str, Any]) -> None:
        if column not in self.sortable_columns():
            return
        if column == self.sort_column:
            self.reverse = not self.reverse
        else:
            self.sort_column, self.reverse = column, False
        self.show(doc)


class RunsTable(RowTable):
    """One row per run of `state`, updated in place: only the cells that changed, so a repaint
    of the table (which re-renders every visible row) happens only when something on it moved."""

    # The highlighted run or configuration; the experiment screen binds its own to it (data_bind).
    highlight: reactive[str | None] = reactive(None, repaint=False, init=False)

    def __init__(self, state: ExperimentState, **kwargs: Any) -> None:
        # The run's name stays in view when a narrow terminal scrolls to the later columns.
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=2, **kwargs)
        self.state = state
        self.rendered: dict[str, tuple[Any, ...]] = {}  # run -> (series version, highlight, status)
        self.cells: dict[str, dict[str, Any]] = {}  # run -> the cells last written
        self.best_label = ""  # the best-value column's label for the task; RUN_COLUMNS' until known

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in RUN_COLUMNS:
            self.add_column(self.best_label if key == "best" and self.best_label else label, key=key)

    def set_best_label(self, label: str) -> None:
        """Name the best-value column for the task (known once the events say it)."""
        if label == self.best_label:
            return
        self.best_label = label
        if not self.columns:  # not mounted yet: on_mount adds the columns with this label
            return
        # DataTable measures a label when its column is added, not when it changes: add the
        # columns again, and the rows as last written (once or twice a run, at its start).
        row, scroll = self.cursor_row, self.scroll_offset
        self.clear(columns=True)
        self._add_columns()
        for name, cells in self.cells.items():
            self.add_row(*(cells[k] for k, _ in RUN_COLUMNS), key=name)
        if self.row_count:
            self.move_cursor(row=min(row, self.row_count - 1), animate=False, scroll=False)
        # After the next refresh: only then has the table its size again to scroll in.
        self.call_after_refresh(self.scroll_to, scroll.x, scroll.y, animate=False)

    def _outgrows(self, column: str, value: Any) -> bool:
        """A new status or ETA wider than its column: widen it (a width update relays out the
        whole screen, so only then)."""
        width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
        return width > self.columns[ColumnKey(column)].content_width

    def watch_highlight(self) -> None:
        self.sync()

    def sync(self, force: bool = False) -> None:
        """Write what changed since the last sync (new events, a new highlight)."""
        state, highlight = self.state, self.highlight
        grouping = state.grouping
        for name in state.run_names:
            version = state.run_series(name).version
            status = state.run(name).get("status")
            key = (version, highlight, status)
            if not force and self.rendered.get(name) == key:
                continue
            cells = run_cells(state, name, grouping.color_index(name), highlight, grouping.key(name))
            if name not in self.rendered:
                self.add_row(*(cells[k] for k, _ in RUN_COLUMNS), key=name)
            else:
                before = self.cells[name]
                for column, value in cells.items():
                    if not _same_cell(value, before.get(column)):
                        self.update_cell(name, column, value, update_width=self._outgrows(column, value))
            self.rendered[name] = key
            self.cells[name] = cells


def _same_cell(a: Any, b: Any) -> bool:
    """Equal text and look (rich's Text equality ignores the base style, e.g. a swatch's colour)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return a == b and a.style == b.style
    return type(a) is type(b) and a == b


def sort_key(column: str, value: Any) -> tuple[int, Any]:
    """Missing values last; better values first for ranked columns."""
    if value is None:
        return (1, 0)
    if column in HIGHER_IS_BETTER and isinstance(value, int | float):
        return (0, -value)
    return (0, value)


class FinalTable(SortableTable):
    """Test metrics of every run; the best value of each column highlighted; sortable."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows_data: list[dict[str, Any]] = []
        self.hidden: list[str] = []  # columns left out to fit the width (named by the ranking line)

    def sortable_columns(self) -> list[str]:
        return [c for c in self.cols if (c in HIGHER_IS_BETTER or c in LOWER_IS_BETTER or c in ("name", "best_epoch"))
                and c not in self.hidden]

    def show(self, doc: dict[str, Any]) -> None:
        task = str((doc.get("dataset") or {}).get("task") or "multiclass")
        grouping = Grouping.from_doc(doc)  # with repeated seeds a run wears its configuration's colour
        selected = self.selected()
        self.cols = columns(task)
        self.rows_data = summary_rows(doc)
        best = best_per_column(self.rows_data, task)
        rows = list(self.rows_data)
        if self.sort_column is not None:
            rows.sort(key=lambda r: sort_key(self.sort_column or "", r.get(self.sort_column or "")), reverse=self.reverse)
        labels = {}
        for column in self.cols:
            labels[column] = header(column) + ((" ▲" if self.reverse else " ▼") if column == self.sort_column else "")
        all_cells = []
        for row in rows:
            cells: dict[str, Any] = {}
            for column in self.cols:
                text = format_value(column, row.get(column))
                if column == "name":
                    color = run_color(grouping.color_index(row["name"]))
                    cells[column] = Text.assemble(("██ ", rich_color(color)), text)
                elif column == "status":
                    cells[column] = status_text(str(row.get("status", "")))
                elif row["name"] in best.get(column, ()):
                    cells[column] = Text(text, style="bold green", justify="right")
                else:
                    cells[column] = Text(text, justify="right")
            all_cells.append(cells)
        self.hidden = []
        kept = list(self.cols)
        if grouping.repeats:  # seed runs' long names: fit the width, as the configurations table does
            widths = {c: max([cell_len(labels[c])] + [cell_len(str(cells[c])) for cells in all_cells])
                      for c in self.cols}
            kept, self.hidden = fit_columns(widths, (self.size.width or self.app.size.width) - 2)
        self.clear(columns=True)
        for column in kept:
            self.add_column(labels[column], key=column)
        for row, cells in zip(rows, all_cells, strict=True):
            self.add_row(*(cells[c] for c in kept), key=row["name"])
        if selected in [r["name"] for r in rows]:
            self.move_cursor(row=[r["name"] for r in rows].index(selected))
