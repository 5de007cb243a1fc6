"""Which table the experiment screen shows, and what selecting and sorting in it mean.

While training: the runs table and, when seeds are repeated, the configurations table live (each
configuration's progress and mean ± std of its seeds' best validation value). Once every run
has ended: the final table (one row per run) and, when seeds were repeated, the configurations
table (mean ± std and n of each test metric) with the ranking verdict. `t` cycles through them. The widgets stay children of the screen
(their heights are set against the screen's in optlab.tcss); this object only switches them.
"""

from __future__ import annotations

from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable

from optlab.runs.grouping import Grouping
from optlab.runs.reports import comparison_warnings
from optlab.tui.state import ExperimentState
from optlab.tui.widgets.seeds_table import RankingLine, SeedsTable
from optlab.tui.widgets.tables import FinalTable, RowTable, RunsTable

RUNS, GROUPS, FINAL = "runs", "groups", "final"


class TableViews:
    def __init__(self, runs: RunsTable, final: FinalTable, seeds: SeedsTable, ranking: RankingLine) -> None:
        self.runs, self.final, self.seeds, self.ranking = runs, final, seeds, ranking
        self.view = RUNS
        self.repeats = False  # seeds are repeated: the configurations view exists
        self.finished = False  # every run has ended: the end tables are filled
        self.warnings = False  # some columns are unfair across runs: said under the end tables
        self.grouping = Grouping()
        self.doc: dict[str, Any] | None = None  # the end tables' results document

    @property
    def views(self) -> tuple[str, ...]:
        if not self.finished:
            return (RUNS, GROUPS) if self.repeats else (RUNS,)
        return (RUNS, GROUPS, FINAL) if self.repeats else (RUNS, FINAL)

    def sync_live(self, state: ExperimentState) -> None:
        """New events while training: refresh the live configurations table if it is shown."""
        self.repeats = state.grouping.repeats
        if not self.finished and self.view == GROUPS:
            self.grouping = state.grouping
            self.seeds.show_live(state)

    @property
    def table(self) -> RowTable:
        return {RUNS: self.runs, GROUPS: self.seeds, FINAL: self.final}[self.view]

    def show_final(self, doc: dict[str, Any]) -> None:
        """Fill the end tables from the results document, and show the first of them (the
        configurations with repeated seeds: that is the comparison the seeds were run for)."""
        self.grouping = Grouping.from_doc(doc)
        self.repeats = self.grouping.repeats
        self.finished = True
        self.final.show(doc)
        self.warnings = bool(comparison_warnings(doc))
        if self.repeats:
            self.seeds.show(doc)
        if self.repeats or self.warnings:
            self._show_ranking(doc)
        if self.view == RUNS:
            self.set(GROUPS if self.repeats else FINAL)

    def refit(self, doc: dict[str, Any]) -> None:
        """The terminal changed size: fit the configurations table to it again."""
        if self.finished and (self.repeats or self.warnings):
            self.final.show(doc)
            if self.repeats:
                self.seeds.show(doc)
            self._show_ranking(doc)

    def _show_ranking(self, doc: dict[str, Any]) -> None:
        """The verdict, and what the shown end table left out for width."""
        self.doc = doc
        self.ranking.show(doc, self.final.hidden if self.view == FINAL else self.seeds.hidden, self.repeats)

    def set(self, view: str) -> None:
        self.view = view
        self.runs.display = view == RUNS
        self.final.display = view == FINAL
        self.seeds.display = view == GROUPS
        self.ranking.display = view != RUNS and self.finished and (self.repeats or self.warnings)
        if self.ranking.display and self.doc is not None:
            self._show_ranking(self.doc)
        self.table.focus()

    def cycle(self, state: ExperimentState) -> None:
        self.set(self.views[(self.views.index(self.view) + 1) % len(self.views)])
        self.sync_live(state)

    def selected(self) -> str | None:
        """The selected run; on the configurations table, the configuration's first seed."""
        if self.view == GROUPS:
            group = self.seeds.selected()
            return None if group is None else self.grouping.first_run(group)
        return self.table.selected()

    def open_group(self, group: str) -> None:
        """Enter on a configuration: its seeds, in the final table (in the runs table while training)."""
        first = self.grouping.first_run(group)
        self.set(FINAL if self.finished else RUNS)
        table = self.table
        rows = [str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value) for i in range(table.row_count)]
        if first in rows:
            table.move_cursor(row=rows.index(first))

    def cycle_sort(self, doc: dict[str, Any]) -> bool:
        """Sort the shown end table by its next column; False on the live tables."""
        if not self.finished:
            return False
        if self.view == GROUPS:
            self.seeds.cycle_sort(doc)
        elif self.view == FINAL:
            self.final.cycle_sort(doc)
        return self.view != RUNS

    def sort_by(self, table: DataTable, column: str, doc: dict[str, Any]) -> None:
        if not self.finished:
            return
        if table is self.final:
            self.final.sort_by(column, doc)
        elif table is self.seeds:
            self.seeds.sort_by(column, doc)
