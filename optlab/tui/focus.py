"""Focus on the experiment screen's charts: whether it is on, and the series it draws.

Kept apart from the screen (which only binds `f` and asks `series`), so the screen's state
stays its own and the choice of runs stays in `optlab.runs.focus`, below the front ends.
"""

from __future__ import annotations

from textual.coordinate import Coordinate

from optlab.runs.focus import FOCUS_AUTO, FOCUS_K, focus_note, focus_series, focused_runs
from optlab.runs.formatting import header
from optlab.runs.series import ChartData, Series
from optlab.tui.widgets.tables import SortableTable


class ChartFocus:
    """On by itself above `FOCUS_AUTO` runs, until `f` says otherwise."""

    def __init__(self, k: int = FOCUS_K, auto: int = FOCUS_AUTO) -> None:
        self.k = k
        self.auto = auto
        self.choice: bool | None = None  # None: follow the number of runs

    def on(self, runs: int) -> bool:
        return self.choice if self.choice is not None else runs > self.auto

    def toggle(self, runs: int) -> bool:
        self.choice = not self.on(runs)
        return self.choice

    def series(self, data: ChartData, axis: str, smoothing: float, highlight: str | None,
               table: SortableTable | None = None) -> tuple[dict[str, list[Series]], str] | None:
        """The charts' series and subtitle in focus; None when focus is off. A final table
        sorted by a column (`o`) picks the top runs; otherwise the best validation metric."""
        if not self.on(len(data.run_names)):
            return None
        order, sorted_by = None, "best validation"
        if table is not None and table.sort_column is not None and table.row_count:
            order = [str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value) for i in range(table.row_count)]
            sorted_by = header(table.sort_column) + (" (reversed)" if table.reverse else "")
        series = focus_series(data, axis, smoothing, self.k, highlight, order)
        shown = len(focused_runs(data, self.k, highlight, order)) if highlight else min(self.k, len(data.run_names))
        return series, focus_note(len(data.run_names), shown, highlight, sorted_by)
