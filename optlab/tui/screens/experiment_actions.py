"""The experiment screen's actions on training and on its record: pause, stop a run, quit
(detach or stop everything), save the experiment as a preset, write report.html. Kept apart
from the drawing in `experiment.py`; `ExperimentScreen` is the one subclass.

This base owns what the actions act on (the run directory, the child, the folded state, the
tables that say which run is selected) and how training stands (`paused`, `stopping_since`,
`live`); it says what happened through reactive attributes, whose `watch_*` methods in the
subclass redraw, and through messages (`optlab.tui.messages`) that the app or the screen handle.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import on, work
from textual.reactive import reactive
from textual.screen import Screen

from optlab.errors import OptlabError
from optlab.preset.export import save_to_user_dir
from optlab.runs.publish import REPORT_HTML, write_reports
from optlab.runs.reports import read_run_dir
from optlab.tui.messages import (
    ChildExited,
    Detached,
    ReportFailed,
    ReportWritten,
    StopRequested,
    TrainingStopped,
)
from optlab.tui.process import (
    TrainingProcess,
    child_alive,
    log_path,
    open_in_browser,
    read_control,
    write_control,
)
from optlab.tui.screens.quit import CANCEL, DETACH, STOP, QuitScreen
from optlab.tui.screens.start import StartScreen
from optlab.tui.screens.table_views import TableViews
from optlab.tui.state import ENDED_STATUSES, ExperimentState
from optlab.tui.widgets.seeds_table import RankingLine, SeedsTable
from optlab.tui.widgets.tables import FinalTable, RunsTable

STOP_TIMEOUT_S = 60.0


class ExperimentActions(Screen[None]):
    # repaint=False: what these change is drawn by the subclass's watchers, not by a repaint of
    # the whole screen.
    paused: reactive[bool] = reactive(False, repaint=False, init=False)
    stopping_since: reactive[float | None] = reactive(None, repaint=False, init=False)  # "stop" chosen
    child_exit: reactive[int | None] = reactive(None, repaint=False, init=False)  # the child's exit code

    def __init__(self, run_dir: Path, process: TrainingProcess | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.process = process
        self.state = ExperimentState()
        # The tables are made here, so that the actions can ask which run is selected; the
        # subclass's compose places them.
        self.tables = TableViews(RunsTable(self.state, id="runs"), FinalTable(id="final"), SeedsTable(id="seeds-table"),
                                 RankingLine(id="ranking"))
        self.saved_presets: list[Path] = []
        self.report_path: Path | None = None  # the last report.html the `r` key wrote
        # A viewed run directory may already be paused; set without watchers (nothing drawn yet).
        self.set_reactive(ExperimentActions.paused,
                          False if process is not None else bool(read_control(run_dir).get("paused")))

    @property
    def live(self) -> bool:
        """Training may still be running (controls make sense, quitting asks)."""
        if self.state.ended:
            return False
        if self.process is not None:
            return self.process.running
        return child_alive(self.run_dir) is not False and self.child_exit is None

    @property
    def runs_table(self) -> RunsTable:
        return self.tables.runs

    @property
    def final_table(self) -> FinalTable:
        return self.tables.final

    @property
    def seeds_table(self) -> SeedsTable:
        return self.tables.seeds

    def selected(self) -> str | None:
        return self.tables.selected()

    @on(ChildExited)
    def child_exited(self, message: ChildExited) -> None:
        # `child_exit` is reactive: the subclass's watcher puts the exit on the status line.
        self.child_exit = message.code
        if message.code != 0 or not self.state.ended:
            self.notify(self.failure_text(), severity="error", timeout=10)

    def failure_text(self) -> str:
        tail = self.process.log_tail(6) if self.process is not None else ""
        text = f"training process exited with code {self.child_exit}"
        if not self.state.ended:
            text += " before the experiment ended"
        return text + (f":\n{tail}" if tail else "") + f"\n(log: {log_path(self.run_dir)})"

    def _controllable(self) -> bool:
        if not self.live:
            self.notify("training is not running", severity="warning")
            return False
        if not (self.run_dir / "events.jsonl").is_file():
            self.notify("training is still starting; try again in a moment", severity="warning")
            return False
        return True

    def action_toggle_pause(self) -> None:
        if self._controllable():
            self.paused = not self.paused
            write_control(self.run_dir, paused=self.paused)

    def action_stop_run(self) -> None:
        name = self.selected()
        if name is None or not self._controllable():
            return
        if self.state.run(name)["status"] in ENDED_STATUSES:
            self.notify(f"{name} has already ended", severity="warning")
            return
        write_control(self.run_dir, stop=name)
        self.notify(f"stopping {name}")

    def action_save_preset(self) -> None:
        """The experiment as it runs (overrides and seeds applied) as a preset in the user's
        preset directory, where the start screen and `optlab compare NAME` find it."""
        try:
            path = save_to_user_dir(self.run_dir)
        except OptlabError as exc:
            self.notify(f"cannot save the preset: {exc}", severity="error", timeout=8)
            return
        self.saved_presets.append(path)
        self.notify(f"saved preset {path.stem!r} to {path}", timeout=8)

    def action_write_report(self) -> None:
        self.notify("writing report.html …", timeout=3)
        self.write_report()

    @work(thread=True, exclusive=True, group="report")
    def write_report(self) -> None:
        """The run directory's charts and report.html, as `optlab report` writes them (live
        runs: as far as they got), then the page in a browser when this machine has one."""
        try:
            results, _ = read_run_dir(self.run_dir)
            write_reports(self.run_dir, results)
        except (OptlabError, OSError) as exc:
            self.post_message(ReportFailed(str(exc)))
            return
        path = self.run_dir / REPORT_HTML
        self.post_message(ReportWritten(path, open_in_browser(path)))

    @on(ReportWritten)
    def report_written(self, message: ReportWritten) -> None:
        self.report_path = message.path
        where = "opened in a browser" if message.opened else "open it in a browser"
        self.notify(f"wrote {message.path} ({where})", timeout=10)

    @on(ReportFailed)
    def report_failed(self, message: ReportFailed) -> None:
        self.notify(f"cannot write the report: {message.error}", severity="error", timeout=8)

    def action_back_or_quit(self) -> None:
        """q: an experiment opened from the start screen that no longer trains goes back to it
        (to pick the next preset or run); otherwise quit, asking while training runs."""
        if not self.live and any(isinstance(s, StartScreen) for s in self.app.screen_stack[:-1]):
            self.app.pop_screen()
            return
        self.action_request_quit()

    def action_request_quit(self) -> None:
        if not self.live:
            self.app.exit()
            return
        if self.stopping_since is not None:
            return
        self.app.push_screen(QuitScreen(str(self.run_dir)), self.on_quit_choice)

    def on_quit_choice(self, choice: str | None) -> None:
        if choice == DETACH:
            self.post_message(Detached(self.run_dir))  # the app's: it exits, training goes on
        elif choice == STOP:
            self.post_message(StopRequested())  # the app's: it reports partial results at exit
            self.stopping_since = time.monotonic()
            if self.process is not None:
                self.stop_process()
            else:
                write_control(self.run_dir, stop_all=True, paused=False)
        elif choice in (CANCEL, None):
            pass

    @work(thread=True, exclusive=True, group="stop")
    def stop_process(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=STOP_TIMEOUT_S)
        self.post_message(TrainingStopped())

    @on(TrainingStopped)
    def training_stopped(self) -> None:
        self.app.exit()
