"""The experiment screen: live runs table, charts, and the final table once every run ended.

Everything on it comes from the run directory: a steady timer tails events.jsonl and posts what
it read (`EventsArrived`), so the same screen serves a run this process started and `optlab
view RUN_DIR`. The handler folds the events and posts `StateChanged` (coalesced), whose handler
draws what is due at the pace `pacing.py` sets. The view settings (x axis, smoothing, log
scale, band, highlighted run, layout) are reactive attributes: their `watch_*` methods redraw.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from optlab.runs.axes import wants_log
from optlab.runs.grouping import BAND_MODES
from optlab.runs.series import VAL_LABELS, X_AXES, X_LABELS, chart_note, group_series, run_series
from optlab.runs.store import EventTail
from optlab.training.events import Event
from optlab.tui.devices import DeviceMonitor
from optlab.tui.focus import ChartFocus
from optlab.tui.headline import header_text, settings_text
from optlab.tui.messages import ChildExited, EventsArrived, StateChanged, TrainingStopped
from optlab.tui.pacing import RedrawPace
from optlab.tui.process import TrainingProcess, child_alive, log_path
from optlab.tui.screens.details import DetailsScreen
from optlab.tui.screens.experiment_actions import STOP_TIMEOUT_S, ExperimentActions
from optlab.tui.screens.sweep import SweepScreen
from optlab.tui.state import BEST_LABELS, ENDED_STATUSES, format_eta
from optlab.tui.widgets.chart import Chart
from optlab.tui.widgets.devices import DevicesPane

SMOOTHING = (0.0, 0.6, 0.9)
LAYOUTS = ("grid", "loss", "lr", "val")
TICK_S = 0.25  # how often events.jsonl is read, and the clock on the header and status line moves
CHART_EVERY_S = 1.0  # new data is drawn at most this often, less often on a busy CPU (see pacing.py)


class ExperimentScreen(ExperimentActions):
    # Short descriptions and q first: at 80 columns the footer must still show how to quit.
    BINDINGS = [
        Binding("question_mark", "app.show_keys", "keys"),  # first: a narrow footer still shows it
        Binding("q", "back_or_quit", "quit"),  # back to the start screen once done, if it opened this
        Binding("space", "toggle_pause", "pause"),
        Binding("k", "stop_run", "stop run"),
        Binding("l", "toggle_log", "log y"),
        Binding("s", "cycle_smoothing", "smooth"),
        Binding("x", "cycle_x", "x axis"),
        Binding("h", "highlight", "highlight"),
        Binding("f", "toggle_focus", "focus"),  # many runs: top k in colour, the rest a grey band
        Binding("c", "cycle_layout", "layout"),
        Binding("o", "cycle_sort", "sort"),
        Binding("t", "toggle_table", "tables", show=False),
        Binding("b", "cycle_band", "band"),  # shown only with repeated seeds (check_action)
        Binding("w", "save_preset", "save preset"),  # not ctrl+s: many terminals take it for XOFF
        Binding("r", "write_report", "HTML report", show=False),
        Binding("d", "toggle_devices", "devices", show=False),
        Binding("v", "show_sweep", "sweep"),  # shown only for a sweep (check_action)
    ]

    # The view settings. Their watchers draw (repaint=False: a repaint of the whole screen would
    # add nothing); none is set before the screen is mounted.
    log_y: reactive[bool] = reactive(False, repaint=False, init=False)
    smoothing: reactive[float] = reactive(0.0, repaint=False, init=False)
    x_axis: reactive[str] = reactive("step", repaint=False, init=False)
    highlight: reactive[str | None] = reactive(None, repaint=False, init=False)  # a run, or a configuration
    band_mode: reactive[str] = reactive(BAND_MODES[0], repaint=False, init=False)
    # Always applied: the first layout may equal the default and its classes still need setting.
    layout_mode: reactive[str] = reactive("grid", repaint=False, init=False, always_update=True)
    # Seeds are repeated (known once the run names are): the band key appears in the footer.
    repeats: reactive[bool] = reactive(False, repaint=False, init=False, bindings=True)

    def __init__(self, run_dir: Path, process: TrainingProcess | None = None, preset_label: str = "") -> None:
        super().__init__(run_dir, process)
        self.preset_label = preset_label
        self.tail = EventTail(run_dir / "events.jsonl")
        self.chart_focus = ChartFocus()
        self.layout_chosen = False
        self.opened_at = time.monotonic()
        self.exit_posted = False
        self.pace = RedrawPace(fastest_s=CHART_EVERY_S)
        # What new events made stale and the pace has not let through yet (see draw_due).
        self.charts_stale = self.tables_stale = True
        self.last_chart_s = self.last_table_s = self.last_devices_s = 0.0
        self.redraw_timer: Timer | None = None
        self.final_version = -1
        self._header = ""
        self._status = Text()
        self._status_lines = 0

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="status")
        yield self.tables.runs.data_bind(ExperimentScreen.highlight)  # the table fades the other runs
        yield self.tables.final
        yield self.tables.seeds
        yield self.tables.ranking
        yield DevicesPane(DeviceMonitor(), id="devices")
        with Container(id="charts"):
            yield Chart("training loss", id="chart-loss")
            yield Chart("learning rate", id="chart-lr", clip_outliers=False)
            yield Chart("validation accuracy", id="chart-val")
        yield Footer(show_command_palette=False, compact=True)

    @property
    def showing_final(self) -> bool:
        return self.tables.view != "runs"

    def chart(self, key: str) -> Chart:
        return self.query_one(f"#chart-{key}", Chart)

    def fitting_layout(self) -> str:
        """Three charts need room; below 100x30 one chart at a time stays readable."""
        size = self.app.size
        return "grid" if size.width >= 100 and size.height >= 30 else "loss"

    def on_mount(self) -> None:
        self.layout_mode = self.fitting_layout()
        self.runs_table.focus()
        self.tick()
        self.post_message(StateChanged())  # the first drawing, after what the first read found
        self.set_interval(TICK_S, self.tick)
        self.set_interval(TICK_S, self.update_clock)

    def watch_layout_mode(self, mode: str) -> None:
        self.query_one("#charts").set_class(mode != "grid", "-single")
        for key in ("loss", "lr", "val"):
            self.chart(key).set_class(mode in ("grid", key), "-shown")

    # ------------------------------------------------------------ reading the run directory

    def tick(self) -> None:
        """The polling timer: read the files and post what they say; the handlers act on it."""
        exit_code = self.process.poll() if self.process is not None else None
        events = self.tail.read()
        if exit_code is not None:  # read what the child wrote before it exited
            while more := self.tail.read():
                events += more
        if events:
            self.post_message(EventsArrived(events))
        if exit_code is not None and not self.exit_posted:
            self.exit_posted = True
            self.post_message(ChildExited(exit_code))
        if self.stopping_since is not None and self.process is None:
            gone = self.state.ended or child_alive(self.run_dir) is False
            if gone or time.monotonic() - self.stopping_since > STOP_TIMEOUT_S:
                self.post_message(TrainingStopped())

    def catch_up(self) -> None:
        """Read and fold at once: the sweep screen asks before it draws, in case this screen's
        timer sleeps beneath it."""
        self.fold(self.tail.read())

    def on_events_arrived(self, message: EventsArrived) -> None:
        self.fold(message.events)

    def fold(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self.state.apply(events)
        self.tables_stale = self.charts_stale = True
        if self.state.events_seen == len(events):  # the first: the preset says whether it sweeps
            self.refresh_bindings()
        self.repeats = self.state.grouping.repeats
        self.post_message(StateChanged())

    # ------------------------------------------------------------ when to draw

    def on_state_changed(self) -> None:
        self.draw_due()

    def draw_due(self) -> None:
        """Draw the stale tables and charts that the pace lets through (everything at once when
        the experiment is over); come back by a timer for the rest."""
        now = time.monotonic()
        finished = self.state.finished
        with self.app.batch_update():
            if self.tables_stale and (self.pace.due(self.last_table_s, now) or finished):
                self.runs_table.sync()
                self.tables.sync_live(self.state)
                self.tables_stale, self.last_table_s = False, now
            if self.charts_stale and (self.pace.due(self.last_chart_s, now) or finished):
                self.update_charts()
            if finished and self.final_version != self.state.version:
                self.show_final()
            self.update_header()
            self.update_status()
        waits = [last + self.pace.every_s - now for stale, last in
                 ((self.tables_stale, self.last_table_s), (self.charts_stale, self.last_chart_s)) if stale]
        if waits and self.redraw_timer is None:  # not sooner than a read: nothing finer is needed
            self.redraw_timer = self.set_timer(max(TICK_S, min(waits)), self._redraw_timer_fired)

    def _redraw_timer_fired(self) -> None:
        self.redraw_timer = None
        self.draw_due()

    def update_clock(self) -> None:
        """What moves with the time alone: elapsed time and ETA, the devices pane, and the
        pace's view of this process's CPU use."""
        self.pace.observe()
        with self.app.batch_update():
            devices = self.query_one("#devices", DevicesPane)
            now = time.monotonic()
            if devices.shown and self.pace.due(self.last_devices_s, now):  # no faster than the charts
                devices.refresh_from(self.state.doc["runs"])
                self.last_devices_s = now
            self.update_header()
            self.update_status()

    # ------------------------------------------------------------ drawing

    def update_header(self) -> None:
        doc = self.state.doc
        if self.state.ended:
            elapsed = float(doc.get("wall_time_s") or 0.0)
        elif self.state.started_time:
            elapsed = time.time() - self.state.started_time
        else:
            elapsed = time.monotonic() - self.opened_at
        text = header_text(doc, self.preset_label or self.run_dir.name, elapsed)
        if text != self._header:
            self._header = text
            self.query_one("#header", Static).update(text, layout=False)  # one line, always

    def status_message(self) -> Text:
        state = self.state
        if self.child_exit is not None and (self.child_exit != 0 or not state.ended):
            return Text(f"training process exited with code {self.child_exit}; log: {log_path(self.run_dir)}",
                        style="bold red")
        if self.stopping_since is not None:
            return Text("stopping every run, keeping the partial results…", style="bold yellow")
        if not state.started:
            wait = int(time.monotonic() - self.opened_at)
            return Text(f"starting training (loading torch and the dataset)… {wait}s", style="dim")
        if state.ended:
            return Text(f"{state.doc.get('status', 'finished')} · results in {self.run_dir}", style="green")
        if self.paused:
            return Text("PAUSED (space resumes)", style="bold yellow")
        runs = state.doc["runs"]
        ended = sum(r["status"] in ENDED_STATUSES for r in runs)
        eta = max((e for e in (state.eta_s(n) for n in state.run_names) if e is not None), default=None)
        where = "" if self.process is not None else " (attached)"
        text = f"running{where} · {ended}/{len(runs)} runs ended"
        if state.finished:
            text = f"every run ended · {self.run_dir}"
        elif eta is not None:
            text += f" · ETA {format_eta(eta)}"
        if self.process is None and not self.live:
            text = f"viewing {self.run_dir} (no end recorded; training is not running)"
        return Text(text)

    def update_status(self) -> None:
        text = self.status_message()
        band = self.band_mode if self.repeats else None
        settings = settings_text(self.x_axis, self.log_y, self.smoothing, self.highlight, band)
        text.append("   " + settings, style="dim")
        if text != self._status:
            status = self.query_one("#status", Static)
            # A relayout of the screen costs more than the rest of a tick: only when the line
            # count changes (the ETA ticks every second; the height rarely moves).
            lines = len(text.wrap(self.app.console, max(1, status.content_region.width or self.app.size.width)))
            status.update(text, layout=lines != self._status_lines)
            self._status, self._status_lines = text, lines

    def update_charts(self) -> None:
        state, axis = self.state, self.x_axis
        note = chart_note(state, self.band_mode)
        if focused := self.chart_focus.series(state, axis, self.smoothing, self.highlight, self.final_table):
            series, note = focused
        elif state.grouping.repeats and self.band_mode != "seeds":
            series, _ = group_series(state, axis, self.smoothing, self.highlight, self.band_mode)
        else:
            series = run_series(state, axis, self.smoothing, self.highlight)
        smooth = f", EMA {self.smoothing}" if self.smoothing else ""
        self.chart("loss").title = f"loss: train (line{smooth}), validation (•)"
        self.chart("val").title = VAL_LABELS[state.val_key]  # known once the task (and old logs) are
        self.runs_table.set_best_label(BEST_LABELS[state.val_key])
        # Rates spanning more than a decade (adadelta's 1.0 beside sgd's 0.01) go log by themselves.
        lr_log = self.log_y or wants_log(s.ys for s in series["lr"])
        for key in ("loss", "lr", "val"):
            chart = self.chart(key)
            chart.x_label = X_LABELS[axis]
            chart.log_y = lr_log if key == "lr" else self.log_y and key != "val"
            chart.note = note
            chart.set_series(series[key])
        self.charts_stale = False
        self.last_chart_s = time.monotonic()

    def show_final(self) -> None:
        self.final_version = self.state.version
        self.tables.show_final(self.state.doc)

    # ------------------------------------------------------------ selection

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        if name is None:
            return
        if event.data_table is self.seeds_table:
            self.tables.open_group(str(name))
        else:
            self.app.push_screen(DetailsScreen(self.state.run(str(name)), self.state.task, self.run_dir))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.column_key.value:
            self.tables.sort_by(event.data_table, str(event.column_key.value), self.state.doc)
            self.update_charts()

    # ------------------------------------------------------------ actions and their watchers

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y

    def action_cycle_smoothing(self) -> None:
        self.smoothing = SMOOTHING[(SMOOTHING.index(self.smoothing) + 1) % len(SMOOTHING)]

    def action_cycle_x(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]

    def action_cycle_band(self) -> None:
        self.band_mode = BAND_MODES[(BAND_MODES.index(self.band_mode) + 1) % len(BAND_MODES)]

    def redraw_view(self) -> None:
        """A view setting changed: the charts and the settings on the status line, at once."""
        self.update_charts()
        self.update_status()

    # Each setting redraws the same two things; the watchers are named for textual to find them.
    # (The runs table follows `highlight` by itself: compose binds it.)
    watch_log_y = watch_smoothing = watch_x_axis = watch_band_mode = watch_highlight = redraw_view

    def action_highlight(self) -> None:
        name = self.selected()
        key = None if name is None else self.state.grouping.key(name)  # seeds: the configuration
        self.highlight = None if key is None or key == self.highlight else key

    def watch_repeats(self) -> None:
        self.update_status()  # the band setting shows with repeated seeds

    def watch_paused(self) -> None:
        self.update_status()

    def watch_stopping_since(self) -> None:
        self.update_status()

    def watch_child_exit(self) -> None:
        self.update_status()

    def on_resize(self) -> None:
        if not self.layout_chosen:  # follow the terminal until the user picks a layout
            self.layout_mode = self.fitting_layout()
        self.tables.refit(self.state.doc)

    def action_cycle_layout(self) -> None:
        self.layout_chosen = True
        # Three charts in a terminal too small for them are unreadable: cycle single charts there.
        layouts = LAYOUTS if self.fitting_layout() == "grid" else LAYOUTS[1:]
        current = self.layout_mode if self.layout_mode in layouts else layouts[-1]
        self.layout_mode = layouts[(layouts.index(current) + 1) % len(layouts)]

    def action_toggle_devices(self) -> None:
        devices = self.query_one("#devices", DevicesPane)
        devices.set_class(not devices.shown, "-shown")
        if devices.shown:
            devices.refresh_from(self.state.doc["runs"])
            self.last_devices_s = time.monotonic()

    def action_cycle_sort(self) -> None:
        if not self.tables.cycle_sort(self.state.doc):
            self.notify("sorting applies to the final table", severity="information")
        self.update_charts()  # in focus, the sort picks the runs in colour

    def action_toggle_table(self) -> None:
        self.tables.cycle(self.state)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The band key means nothing without repeated seeds: hidden, so such a screen is unchanged.
        if action == "show_sweep":
            return bool((self.state.doc.get("preset") or {}).get("sweep"))
        return self.repeats if action == "cycle_band" else True

    def action_show_sweep(self) -> None:
        self.app.push_screen(SweepScreen(self.state, self.catch_up))

    def action_toggle_focus(self) -> None:
        self.chart_focus.toggle(len(self.state.run_names))
        self.update_charts()
