"""The optlab TUI application and `launch`, its entry point for the CLI."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from textual import on
from textual.app import App
from textual.binding import Binding

from optlab.runs.store import default_run_dir
from optlab.tui.messages import Detached, StopRequested
from optlab.tui.process import TrainingProcess, check_run_dir
from optlab.tui.screens.experiment import ExperimentScreen
from optlab.tui.screens.start import StartScreen
from optlab.tui.screens.tune import TuneScreen
from optlab.tui.tune_process import TuneProcess
from optlab.tuning.live import is_tune_dir


def preset_name(ref: str) -> str:
    """The name a run directory gets for a preset reference (a name or a path)."""
    path = Path(ref)
    return path.stem if path.suffix == ".toml" or "/" in ref else ref


class OptlabApp(App[int]):
    CSS_PATH = "optlab.tcss"
    TITLE = "optlab"
    # Screens list this key first in their own bindings, so a footer cut at 80 columns shows it.
    BINDINGS = [Binding("question_mark", "show_keys", "keys")]

    def __init__(
        self,
        preset: str | None = None,
        overrides: Sequence[str] = (),
        device: str = "auto",
        out: Path | None = None,
        view: Path | None = None,
        runs_base: Path = Path("runs"),
        label: str | None = None,
        process: TrainingProcess | None = None,
    ) -> None:
        super().__init__()
        self.started_process = process  # a child the CLI already started and validated
        self.preset = preset
        self.label = label
        self.overrides = list(overrides)
        self.device = device
        self.out = out
        self.view = view
        self.runs_base = runs_base
        self.process: TrainingProcess | None = None
        self.run_dir: Path | None = None
        # Set by this class's handlers of the experiment screen's messages; read by `launch`.
        self.detached = False  # the user quit and left training running
        self.stopped = False  # the user chose "stop" when quitting

    def action_show_keys(self) -> None:
        from optlab.tui.screens.keys import KeysScreen, key_lines

        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen(key_lines(self.screen)))

    def on_mount(self) -> None:
        if self.view is not None:
            self.open_view(self.view)
        elif self.started_process is not None:
            self.process = self.started_process
            self.run_dir = self.process.run_dir
            if isinstance(self.process, TuneProcess):
                self.push_screen(TuneScreen(self.run_dir, self.process, preset_label=self.label or ""))
            else:
                self.push_screen(ExperimentScreen(self.run_dir, self.process, preset_label=self.label or ""))
        elif self.preset is not None:
            self.start_experiment(self.preset, self.overrides, self.out, self.label)
        else:
            self.push_screen(StartScreen(self.runs_base))

    def start_experiment(
        self, preset: str, overrides: Sequence[str] = (), out: Path | None = None, label: str | None = None
    ) -> None:
        """Start `optlab compare` as a child process and show its run directory."""
        if self.process is not None and self.process.running:
            self.notify("an experiment is already running", severity="warning")
            return
        label = label or preset_name(preset)
        run_dir = out or default_run_dir(label, self.runs_base)
        self.process = TrainingProcess(preset, run_dir, self.device, overrides)
        self.process.start()
        self.run_dir = run_dir
        self.push_screen(ExperimentScreen(run_dir, self.process, preset_label=label))

    def open_view(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # A tuning study (its settings are written before its first trial) has its own screen.
        self.push_screen(TuneScreen(run_dir, None) if is_tune_dir(run_dir) else ExperimentScreen(run_dir, None))

    async def action_quit(self) -> None:
        screen = self.screen
        if isinstance(screen, ExperimentScreen | TuneScreen):
            screen.action_request_quit()
        else:
            self.exit()

    @on(Detached)
    def detached_from_training(self) -> None:
        self.detached = True
        self.exit()

    @on(StopRequested)
    def stop_requested(self) -> None:
        self.stopped = True

    @property
    def training_running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def training_failed(self) -> bool:
        return self.process is not None and self.process.poll() not in (None, 0)


def launch(
    preset: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    out: Path | None = None,
    view: Path | None = None,
    label: str | None = None,
    process: TrainingProcess | None = None,
) -> int:
    """Run the TUI; returns the exit code (0, or 1 when the training process failed)."""
    if view is not None:
        check_run_dir(view)
    app = OptlabApp(preset=preset, overrides=overrides, device=device, out=out, view=view, label=label, process=process)
    app.run()
    if app.run_dir is not None and (app.detached or app.training_running):
        print(f"Training continues in the background. Reattach with:\n  optlab view {app.run_dir}")
    elif app.run_dir is not None and app.stopped:
        # An interrupted child (stopped before its run directory existed) is not a failure.
        print(f"Stopped; partial results in {app.run_dir}")
    elif app.run_dir is not None and app.training_failed and app.process is not None:
        print(f"Training failed (exit code {app.process.poll()}); log: {app.process.log}", file=sys.stderr)
        tail = app.process.log_tail(12)
        if tail:
            print(tail, file=sys.stderr)
        return 1
    elif app.run_dir is not None and (app.run_dir / "results.json").is_file():
        print(f"Results: {app.run_dir}")
    return 0 if app.return_code in (None, 0) else int(app.return_code)
