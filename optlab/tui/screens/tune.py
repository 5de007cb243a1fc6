"""The tuning screen (`optlab tui PRESET --tune`, `optlab view` on a tuning run directory): the
trials table, each candidate's best so far, the sensitivity dots (objective against log10 lr,
one per ended trial, in the candidate's colour) or the best-so-far curves, the devices pane,
and at the end the tuned ranking from tune.json.

As the experiment screen: a steady timer tails events.jsonl and posts what it read
(`EventsArrived`); the handler folds it into a `TuneLog` (work proportional to the new events)
and posts `StateChanged`, whose handler draws what is due at the pace of `pacing.py`. Quitting
asks as there (stop / detach / cancel); detaching leaves the study running.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from optlab.runs.palette import rich_color, run_color
from optlab.runs.series import Series
from optlab.runs.store import EventTail
from optlab.tui.devices import DeviceMonitor
from optlab.tui.headline import clock
from optlab.tui.messages import (
    ChildExited,
    Detached,
    EventsArrived,
    StateChanged,
    StopRequested,
    TrainingStopped,
    TuneSummaryRead,
)
from optlab.tui.pacing import RedrawPace
from optlab.tui.process import child_alive, log_path
from optlab.tui.screens.quit import DETACH, STOP, QuitScreen
from optlab.tui.screens.start import StartScreen
from optlab.tui.tune_process import TuneProcess, interrupt_study
from optlab.tui.widgets.chart import Chart
from optlab.tui.widgets.devices import DevicesPane
from optlab.tui.widgets.trials_table import RankingTable, TrialsTable
from optlab.tuning.live import TuneLog, format_params, read_settings

TICK_S = 0.25  # as the experiment screen: how often events.jsonl is read
CHART_EVERY_S = 1.0  # new data drawn at most this often (less on a busy CPU: pacing.py)
STOP_TIMEOUT_S = 60.0
CHARTS = ("sensitivity", "best")
TUNE_JSON = "tune.json"  # report.TUNE_JSON


class TuneScreen(Screen[None]):
    BINDINGS = [
        Binding("question_mark", "app.show_keys", "keys"),  # first: a narrow footer still shows it
        Binding("q", "back_or_quit", "quit"),
        Binding("c", "cycle_chart", "chart"),
        Binding("d", "toggle_devices", "devices"),
    ]

    chart_mode: reactive[str] = reactive(CHARTS[0], repaint=False, init=False)
    child_exit: reactive[int | None] = reactive(None, repaint=False, init=False)
    stopping_since: reactive[float | None] = reactive(None, repaint=False, init=False)

    def __init__(self, run_dir: Path, process: TuneProcess | None = None, preset_label: str = "") -> None:
        super().__init__()
        self.run_dir, self.process, self.preset_label = run_dir, process, preset_label
        self.tail = EventTail(run_dir / "events.jsonl")
        self.study: TuneLog | None = None  # once tune-settings.json is there
        self.summary: dict[str, object] | None = None  # tune.json, once read
        self.summary_posted = self.exit_posted = False
        self.opened_at = time.monotonic()
        self.pace = RedrawPace(fastest_s=CHART_EVERY_S)
        self.pending: set[str] = set()  # trials changed since the table was last drawn
        self.stale = True
        self.last_draw_s = self.last_devices_s = 0.0
        self.redraw_timer: Timer | None = None
        self.draws = 0  # how many times new data was drawn (the 500-trial benchmark counts them)

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="status")
        yield Static(id="tune-best")
        yield RankingTable(id="tune-ranking")
        yield DevicesPane(DeviceMonitor(), id="devices")
        with Container(id="tune-body"):
            yield Chart("sensitivity", x_label="log10 lr", id="tune-chart", clip_outliers=False)
            yield TrialsTable(id="trials")
        yield Footer(show_command_palette=False, compact=True)

    @property
    def chart(self) -> Chart:
        return self.query_one("#tune-chart", Chart)

    @property
    def trials_table(self) -> TrialsTable:
        return self.query_one("#trials", TrialsTable)

    def on_mount(self) -> None:
        self.trials_table.focus()
        self.tick()
        self.post_message(StateChanged())
        self.set_interval(TICK_S, self.tick)
        self.set_interval(1.0, self.update_clock)

    # ------------------------------------------------------------ reading the run directory

    def tick(self) -> None:
        """Read the files and post what they say; the handlers act on it."""
        exit_code = self.process.poll() if self.process is not None else None
        if self.study is None and (settings := read_settings(self.run_dir)) is not None:
            self.study = TuneLog(settings)  # written before the first trial: every event comes after it
        if self.study is not None:
            events = self.tail.read()
            if exit_code is not None:  # what the child wrote before it exited
                while more := self.tail.read():
                    events += more
            if events:
                self.post_message(EventsArrived(events))
            if self.study.ended and not self.summary_posted and (summary := self.read_summary()) is not None:
                self.summary_posted = True
                self.post_message(TuneSummaryRead(summary))
        if exit_code is not None and not self.exit_posted:
            self.exit_posted = True
            self.post_message(ChildExited(exit_code))
        if self.stopping_since is not None and self.process is None:
            gone = (self.study is not None and self.study.ended) or child_alive(self.run_dir) is False
            if gone or time.monotonic() - self.stopping_since > STOP_TIMEOUT_S:
                self.post_message(TrainingStopped())

    def read_summary(self) -> dict[str, object] | None:
        """tune.json once it is this study's: written after the last event, so not older than
        events.jsonl (a resumed study's directory still has the first session's)."""
        path = self.run_dir / TUNE_JSON
        try:
            if path.stat().st_mtime_ns < (self.run_dir / "events.jsonl").stat().st_mtime_ns:
                return None
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def on_events_arrived(self, message: EventsArrived) -> None:
        if self.study is not None:
            self.pending |= self.study.apply(message.events)
            self.stale = True
            self.post_message(StateChanged())

    @on(TuneSummaryRead)
    def summary_read(self, message: TuneSummaryRead) -> None:
        assert self.study is not None
        self.summary = message.summary
        self.pending |= self.study.adopt(message.summary)
        self.stale = True
        ranking = self.query_one("#tune-ranking", RankingTable)
        ranking.show(message.summary)
        ranking.display = True
        self.draw_due()

    @on(ChildExited)
    def child_exited(self, message: ChildExited) -> None:
        self.child_exit = message.code
        if message.code not in (0, 130) or (self.study is None or not self.study.ended):
            tail = self.process.log_tail(6) if self.process is not None else ""
            self.notify(f"tuning process exited with code {message.code}" + (f":\n{tail}" if tail else ""),
                        severity="error", timeout=10)

    # ------------------------------------------------------------ drawing

    def on_state_changed(self) -> None:
        self.draw_due()

    def draw_due(self) -> None:
        now = time.monotonic()
        ended = self.study is not None and self.study.ended
        if self.stale and (self.pace.due(self.last_draw_s, now) or ended):
            with self.app.batch_update():
                self.draw()
        elif self.stale and self.redraw_timer is None:
            wait = self.last_draw_s + self.pace.every_s - now
            self.redraw_timer = self.set_timer(max(TICK_S, wait), self._redraw_timer_fired)
        self.update_status()

    def _redraw_timer_fired(self) -> None:
        self.redraw_timer = None
        self.draw_due()

    def draw(self) -> None:
        self.stale, self.last_draw_s = False, time.monotonic()
        self.draws += 1
        if self.study is None:
            return
        self.trials_table.sync(self.study, self.pending)
        self.pending = set()
        self.update_chart()
        self.update_best()
        self.update_header()

    def update_chart(self) -> None:
        study = self.study
        if study is None:
            return
        objective = study.settings.objective
        chart = self.chart
        series = []
        for c in study.candidates.values():
            color = run_color(c.index)
            if self.chart_mode == "sensitivity":
                series.append(Series(c.name, c.sens_x, c.sens_y, color, run=c.name, style="points"))
            else:
                series.append(Series(c.name, list(range(1, len(c.best_so_far) + 1)), c.best_so_far, color, run=c.name))
        if self.chart_mode == "sensitivity":
            chart.title, chart.x_label = f"sensitivity: {objective} against the learning rate", "log10 lr"
            chart.note = "a dot per ended trial (pruned: last value; diverged, failed: worst)"
        else:
            chart.title, chart.x_label = f"best {objective} so far", "trials ended"
            chart.note = "each candidate's best completed trial after n ended trials"
        chart.set_series(series)

    def update_best(self) -> None:
        """One line per candidate: trials ended of the budget, the best value so far and its
        trial's values; at the end, the ranking verdict and the edge notes."""
        study = self.study
        if study is None:
            return
        text = Text()
        if self.summary is not None:
            ranking = self.summary.get("ranking") or {}
            if isinstance(ranking, dict) and ranking.get("text"):
                text.append(str(ranking["text"]) + "\n")
            for row in self.summary.get("candidates") or []:  # type: ignore[attr-defined]
                for edge in row.get("edges") or []:
                    text.append("note: ", style="yellow")
                    text.append(f"{edge}\n")
        else:
            for c in study.candidates.values():
                text.append("■ ", style=rich_color(run_color(c.index)))
                text.append(f"{c.name}  {c.ended}/{study.settings.budget} trials  ")
                if c.best is None or c.best.value is None:
                    text.append("no completed trial yet\n", style="dim")
                else:
                    text.append(f"best {c.best.value:.4f}", style="bold")
                    text.append(f"  #{c.best.number} {format_params(c.best.params)}\n", style="dim")
        text.rstrip()
        self.query_one("#tune-best", Static).update(text if text.plain else Text("waiting for the first trial…", style="dim"))

    def update_header(self) -> None:
        study = self.study
        name = self.preset_label or (study.preset_name if study is not None else "") or self.run_dir.name
        parts = [f"tune {name}"]
        if study is not None and study.ended:
            parts.append(clock(study.wall_time_s))
        elif study is not None and study.started_time:
            parts.append(clock(time.time() - study.started_time))
        else:
            parts.append(clock(time.monotonic() - self.opened_at))
        if study is not None:
            s = study.settings
            parts += [f"{len(s.candidates)} candidates × {s.budget} trials", f"{s.objective}", f"pruner {s.pruner}",
                      f"{s.final_seeds} final seeds"]
        self.query_one("#header", Static).update("optlab │ " + " │ ".join(parts), layout=False)

    def status_message(self) -> Text:
        study = self.study
        if self.child_exit is not None and self.child_exit not in (0, 130) and (study is None or not study.ended):
            return Text(f"tuning process exited with code {self.child_exit}; log: {log_path(self.run_dir)}",
                        style="bold red")
        if self.stopping_since is not None:
            return Text("stopping the study (the wave's trials stop at a safe point; resumable)…", style="bold yellow")
        if study is None or not study.trials:
            wait = int(time.monotonic() - self.opened_at)
            return Text(f"starting the study (loading torch and the dataset)… {wait}s", style="dim")
        n = study.counts()
        budget = study.settings.budget * len(study.candidates)
        text = (f"{n['ended']}/{budget} trials ended ({n['pruned']} pruned, {n['diverged']} diverged, "
                f"{n['failed']} failed)")
        if study.finals:
            text += f" · final seeds {study.finals_ended()}/{len(study.finals)}"
        if study.ended:
            if study.status == "interrupted":
                return Text(f"interrupted · {text} · `optlab resume {self.run_dir}` continues it", style="yellow")
            return Text(f"finished · {text} · results in {self.run_dir}", style="green")
        if self.process is None and not self.live:
            return Text(f"viewing {self.run_dir} (no end recorded; tuning is not running) · {text}")
        where = "" if self.process is not None else " (attached)"
        return Text(f"tuning{where} · {text}")

    def update_status(self) -> None:
        self.query_one("#status", Static).update(self.status_message())

    def update_clock(self) -> None:
        self.pace.observe()
        with self.app.batch_update():
            self.update_header()
            self.update_status()
            devices = self.query_one("#devices", DevicesPane)
            now = time.monotonic()
            if devices.shown and self.study is not None and self.pace.due(self.last_devices_s, now):
                devices.refresh_from(self.study.placed())
                self.last_devices_s = now

    # ------------------------------------------------------------ keys

    def watch_chart_mode(self) -> None:
        self.update_chart()

    def watch_child_exit(self) -> None:
        self.update_status()

    def watch_stopping_since(self) -> None:
        self.update_status()

    def action_cycle_chart(self) -> None:
        self.chart_mode = CHARTS[(CHARTS.index(self.chart_mode) + 1) % len(CHARTS)]

    def action_toggle_devices(self) -> None:
        devices = self.query_one("#devices", DevicesPane)
        devices.set_class(not devices.shown, "-shown")
        if devices.shown and self.study is not None:
            devices.refresh_from(self.study.placed())
            self.last_devices_s = time.monotonic()

    # ------------------------------------------------------------ quitting: stop or detach

    @property
    def live(self) -> bool:
        """The study may still be running (quitting asks)."""
        if self.process is not None:
            return self.process.running
        if self.study is not None and self.study.ended:
            return False
        return child_alive(self.run_dir) is not False and self.child_exit is None

    def action_back_or_quit(self) -> None:
        """q: a study opened from the start screen that no longer runs goes back to it."""
        if not self.live and any(isinstance(s, StartScreen) for s in self.app.screen_stack[:-1]):
            self.app.pop_screen()
        else:
            self.action_request_quit()

    def action_request_quit(self) -> None:
        if not self.live:
            self.app.exit()
        elif self.stopping_since is None:
            self.app.push_screen(QuitScreen(str(self.run_dir)), self.on_quit_choice)

    def on_quit_choice(self, choice: str | None) -> None:
        if choice == DETACH:
            self.post_message(Detached(self.run_dir))  # the app's: it exits, the study goes on
        elif choice == STOP:
            self.post_message(StopRequested())
            self.stopping_since = time.monotonic()
            if self.process is not None:
                self.stop_process()
            elif not interrupt_study(self.run_dir):
                self.notify("no tuning process to stop on this machine", severity="warning")
                self.post_message(TrainingStopped())

    @work(thread=True, exclusive=True, group="stop")
    def stop_process(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=STOP_TIMEOUT_S)
        self.post_message(TrainingStopped())

    @on(TrainingStopped)
    def training_stopped(self) -> None:
        self.app.exit()
