"""The sweep screen (`v` on the experiment screen of a sweep): which setting is best for each
group, and how sensitive each is to it. A chart of the validation metric against the swept
value (one line per group, seed bands, all-diverged points on the worst edge), and the
per-group table that expands to its runs; `/` filters by group or run name. Live: it redraws
as runs end, from the experiment screen's state, which keeps folding events underneath."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from optlab.runs.palette import dim_color, run_color
from optlab.runs.series import Series
from optlab.runs.sweep import SweepView, edge_value, sweep_view
from optlab.tui.screens.details import DetailsScreen
from optlab.tui.state import ExperimentState
from optlab.tui.widgets.chart import Chart
from optlab.tui.widgets.sweep_table import SweepTable

REFRESH_S = 1.0  # as the experiment screen's charts: new data at most once a second


def sweep_series(view: SweepView) -> list[Series]:
    """One line per group (its seeds' mean), its min-max band in a darker shade, and dots on
    the worst edge where every seed of a setting diverged."""
    out: list[Series] = []
    edge = edge_value(view)
    for i, group in enumerate(view.groups):
        color = run_color(i)
        scored = [p for p in group.points if p.mean is not None]
        xs = [p.x for p in scored]
        out.append(Series(group.name, xs, [p.mean for p in scored], color, run=group.name))  # type: ignore[misc]
        if any(len(p.values) > 1 for p in scored):
            for bound, ys in (("lower", [p.lo for p in scored]), ("upper", [p.hi for p in scored])):
                out.append(Series(f"{group.name} {bound}", xs, ys, dim_color(color), run=group.name,  # type: ignore[arg-type]
                                  legend=False, band=bound))
        dead = [p.x for p in group.points if p.all_diverged]
        if dead and edge is not None:
            out.append(Series(f"{group.name} diverged", dead, [edge] * len(dead), color, run=group.name,
                              style="points", legend=False))
    return out


class SweepScreen(Screen[None]):
    BINDINGS = [
        Binding("question_mark", "app.show_keys", "keys"),
        Binding("escape,v,q", "close", "back"),
        Binding("slash", "filter", "filter"),
        Binding("m", "cycle_reduce", "best/final"),
    ]

    reduce: reactive[str] = reactive("best")

    def __init__(self, state: ExperimentState, tick: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.state = state
        self.tick = tick  # the experiment screen's reader, in case its timer sleeps under this screen
        self.shown_version = -1
        self.view: SweepView | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="sweep-title")
        yield Chart("sweep", x_label="", id="sweep-chart", clip_outliers=False)
        yield Input(placeholder="filter groups and runs by name (Enter keeps it, Escape clears it)",
                    id="sweep-filter")
        yield SweepTable(id="sweep-table")
        yield Footer()

    @property
    def chart(self) -> Chart:
        return self.query_one("#sweep-chart", Chart)

    @property
    def table(self) -> SweepTable:
        return self.query_one("#sweep-table", SweepTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#sweep-filter", Input)

    def on_mount(self) -> None:
        self.filter_input.display = False
        self.table.focus()
        self.refresh_view()
        self.set_interval(REFRESH_S, self.refresh_view)

    def refresh_view(self, force: bool = False) -> None:
        if self.tick is not None:
            self.tick()
        if self.state.version == self.shown_version and not force:
            return
        self.shown_version = self.state.version
        doc = self.state.doc
        view = self.view = sweep_view(doc, self.reduce)
        if view is None:
            self.query_one("#sweep-title", Static).update("no sweep in this experiment (a preset's [sweep] makes one)")
            return
        ended = sum(g.ended for g in view.groups)
        total = sum(g.total for g in view.groups)
        diverged = sum(g.diverged for g in view.groups)
        direction = "higher" if view.higher_is_better else "lower"
        self.query_one("#sweep-title", Static).update(
            f"[b]sweep[/b]: {len(view.groups)} groups x {len(view.ticks)} {view.axis_name}s · "
            f"{ended}/{total} runs ended, {diverged} diverged · {view.metric_label} ({direction} is better)")
        chart = self.chart
        chart.title = f"{view.metric_label} by {view.axis_name}"
        ticks = ", ".join(label for _, label in view.ticks)
        chart.x_label = ("log10 " if view.log_x else "") + view.axis_name
        notes = [f"{view.axis_name}: {ticks}"]
        if view.categorical:
            notes.append("x: index of the setting")
        if any(p.all_diverged for g in view.groups for p in g.points):
            notes.append("dots on the edge: diverged")
        chart.note = " · ".join(notes)
        chart.set_series(sweep_series(view))
        self.table.show(view, doc["runs"])

    def watch_reduce(self) -> None:
        if self.is_mounted:
            self.refresh_view(force=True)

    def action_cycle_reduce(self) -> None:
        self.reduce = "final" if self.reduce == "best" else "best"

    def action_close(self) -> None:
        self.dismiss(None)

    def action_filter(self) -> None:
        self.filter_input.display = True
        self.filter_input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.table.filter = event.value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def on_key(self, event: events.Key) -> None:
        # Escape in the filter clears it (and keeps the screen); elsewhere it goes back.
        if event.key == "escape" and self.filter_input.has_focus:
            event.stop()
            self.filter_input.value = ""
            self.filter_input.display = False
            self.table.focus()

    def on_sweep_table_run_chosen(self, event: SweepTable.RunChosen) -> None:
        run = self.state.run(event.run)
        self.app.push_screen(DetailsScreen(run, self.state.task, getattr(self.app, "run_dir", None)))
