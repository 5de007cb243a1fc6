"""The sweep's runs table: one summary row per group (best value, its swept setting, runs ended
and diverged), which Enter expands to the group's runs; a filter keeps the groups and runs
whose name contains it. Rows come from `optlab.runs.sweep`, as in the reports."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from optlab.runs.palette import STATUS_STYLES, rich_color, run_color
from optlab.runs.sweep import SweepView, format_metric, run_value, summary_rows

COLUMNS = (("swatch", " "), ("name", "group / run"), ("best", "best"), ("at", "at"),
           ("step", "1 step away"), ("ended", "ended"), ("diverged", "diverged"))
RUN_ROW = "run:"  # row keys: a group's name, or RUN_ROW + a run's name


class SweepTable(DataTable):
    """Groups best first; an expanded group lists its runs under it, indented."""

    filter: reactive[str] = reactive("")

    class GroupToggled(Message):
        """A group was expanded or collapsed (Enter on its row)."""

        def __init__(self, group: str, expanded: bool) -> None:
            super().__init__()
            self.group = group
            self.expanded = expanded

    class RunChosen(Message):
        """Enter on a run's row."""

        def __init__(self, run: str) -> None:
            super().__init__()
            self.run = run

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.expanded: set[str] = set()
        self.view: SweepView | None = None
        self.run_docs: dict[str, dict[str, Any]] = {}
        self.group_colors: dict[str, int] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, view: SweepView | None, runs: list[dict[str, Any]]) -> None:
        self.view = view
        self.run_docs = {str(r.get("name")): r for r in runs}
        self.group_colors = {g.name: run_color(i) for i, g in enumerate(view.groups)} if view else {}
        self.rebuild()

    def watch_filter(self) -> None:
        self.rebuild()

    def shown(self) -> list[tuple[str, list[str]]]:
        """(group, the runs shown under it) in table order, after the filter."""
        if self.view is None:
            return []
        needle = self.filter.strip().lower()
        by_name = {g.name: g for g in self.view.groups}
        out = []
        for row in summary_rows(self.view):
            group = by_name[row["group"]]
            runs = group.runs
            if needle and needle not in group.name.lower():
                runs = [r for r in runs if needle in r.lower()]
                if not runs:
                    continue
                out.append((group.name, runs))  # a filter by run name shows the runs it found
            else:
                out.append((group.name, runs if group.name in self.expanded else []))
        return out

    def rebuild(self) -> None:
        if not self.columns or self.view is None:
            return
        view = self.view
        rows = {r["group"]: r for r in summary_rows(view)}
        cursor = self.cursor_row
        self.clear()
        for group, runs in self.shown():
            row = rows[group]
            swatch = Text("■", style=rich_color(self.group_colors.get(group, 250)))
            best = Text(row["best"] + (f" ({row['band']})" if row["band"] else ""), style="bold")
            mark = "▾ " if runs else "▸ "
            self.add_row(swatch, mark + group, best, row["setting"], row["sensitivity"], row["ended"],
                         Text(row["diverged"], style="bold red" if row["diverged"] != "0" else ""), key=group)
            for name in runs:
                run = self.run_docs.get(name, {})
                status = str(run.get("status", "pending"))
                value = run_value(run, view.metric, view.higher_is_better, view.reduce)
                self.add_row("", "   " + name, format_metric(value, view.metric), "", "", "",
                             Text(status, style=STATUS_STYLES.get(status, "")), key=RUN_ROW + name)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def key_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = str(event.row_key.value)
        if key.startswith(RUN_ROW):
            self.post_message(self.RunChosen(key.removeprefix(RUN_ROW)))
            return
        expanded = key not in self.expanded
        (self.expanded.add if expanded else self.expanded.discard)(key)
        self.rebuild()
        self.post_message(self.GroupToggled(key, expanded))

    def row_keys(self) -> list[str]:
        return [str(self.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value) for i in range(self.row_count)]
