"""The experiment screen's actions on training and on its record: pause, stop a run, quit
(detach or stop everything), save the experiment as a preset, write report.html. Kept apart
from the drawing in `experiment.py`; `ExperimentScreen` is the one subclass."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import work
from textual.screen import Screen

from optlab.errors import OptlabError
from optlab.preset.export import save_to_user_dir
from optlab.runs.publish import REPORT_HTML, write_reports
from optlab.runs.reports import read_run_dir
from optlab.tui.process import open_in_browser, write_control
from optlab.tui.screens.quit import CANCEL, DETACH, STOP, QuitScreen
from optlab.tui.screens.start import StartScreen
from optlab.tui.state import ENDED_STATUSES

if TYPE_CHECKING:
    from pathlib import Path

    from optlab.tui.process import TrainingProcess
    from optlab.tui.state import ExperimentState

STOP_TIMEOUT_S = 60.0


class ExperimentActions(Screen[None]):
    # Set by the subclass's __init__.
    run_dir: Path
    process: TrainingProcess | None
    state: ExperimentState
    paused: bool
    saved_presets: list[Path]
    report_path: Path | None
    stopping_since: float | None

    @property
    def live(self) -> bool:
        """Training may still be running (the subclass knows)."""
        raise NotImplementedError

    def selected(self) -> str | None:
        raise NotImplementedError

    def update_status(self) -> None:
        raise NotImplementedError

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
            self.update_status()

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
            self.app.call_from_thread(self.notify, f"cannot write the report: {exc}", severity="error", timeout=8)
            return
        path = self.run_dir / REPORT_HTML
        self.report_path = path
        where = "opened in a browser" if open_in_browser(path) else "open it in a browser"
        self.app.call_from_thread(self.notify, f"wrote {path} ({where})", timeout=10)

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
            self.app.detached = True  # type: ignore[attr-defined]
            self.app.exit()
        elif choice == STOP:
            self.app.stopped = True  # type: ignore[attr-defined]
            self.stopping_since = time.monotonic()
            self.update_status()
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
        self.app.call_from_thread(self.app.exit)
