"""Live progress on stderr: one Rich progress bar per run, fed by engine events, and each run's
notes (e.g. that mixed precision is off on CPU) once, as dim `note:` lines."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from optlab.runs.aggregate import group_of
from optlab.runs.formatting import format_rate
from optlab.runs.notes import ALL_RUNS, RunNotes, note_lines
from optlab.runs.palette import STATUS_STYLES
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    RunEnded,
    RunStarted,
)
from optlab.training.events import Progress as ProgressEvent


def format_loss(value: float) -> str:
    """Four decimals, or three significant digits once a loss explodes (so the line keeps its shape)."""
    if value != value or abs(value) == float("inf"):
        return str(value)
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3g}"


class StatusOrEta(ProgressColumn):
    """The time left while a run trains; its final status once it has ended."""

    def __init__(self) -> None:
        super().__init__()
        self._eta = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        status = task.fields.get("status")
        if status:
            return Text(status, style=STATUS_STYLES.get(status, ""))
        if task.total is None or not task.started:
            return Text("waiting", style="dim")
        return self._eta.render(task)


class ConsoleProgress:
    """A sink: `handle(event)` updates the bars, `close()` stops the live display.

    Updates only store numbers; Rich redraws a few times per second on its own thread, so the
    cost per event is a dictionary update whatever the event rate."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        if not self.console.is_terminal:  # a log file gets the final state once, unsqueezed
            self.console.width = max(self.console.width, 140)
        self.progress = Progress(
            TextColumn("{task.fields[label]}", style="bold"),
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(bar_width=30),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} samples/s"),
            StatusOrEta(),
            console=self.console,
            auto_refresh=self.console.is_terminal,
            refresh_per_second=4,
        )
        self.tasks: dict[str, TaskID] = {}
        self._width = 0
        self._live = False
        # Notes wait until every run has started (the runner starts them all before training),
        # so a note every run shares is printed once for "all runs" instead of once per run.
        self._started: list[str] = []
        self._notes: dict[str, list[str]] = {}
        self._notes_shown = False
        self._groups: dict[str, str] = {}
        self._said: set[tuple[str, str]] = set()  # (scope, note) of the lines printed

    def _task(self, run: str) -> TaskID:
        if run not in self.tasks:
            self._width = max(self._width, len(run))
            self.tasks[run] = self.progress.add_task(
                run, total=None, start=False, label=run, epoch=0, epochs="?", loss="-", rate="-", status=""
            )
            for name, task_id in self.tasks.items():  # keep the names aligned
                self.progress.update(task_id, label=name.ljust(self._width))
        return self.tasks[run]

    def handle(self, event: Event) -> None:
        if not self._live:
            self.progress.start()
            self._live = True
        if isinstance(event, ExperimentStarted):
            for name in event.run_names:
                self._task(name)
        elif isinstance(event, RunStarted):
            self._note(event.run, group_of({"name": event.run, "config": event.spec}), event.notes)
            task = self._task(event.run)
            self.progress.update(task, total=event.total_steps, epochs=event.spec.get("epochs", "?"))
            self.progress.start_task(task)
        elif isinstance(event, ProgressEvent):
            self._show_notes()
            self.progress.update(
                self._task(event.run),
                completed=event.step,
                epoch=event.epoch,
                loss=format_loss(event.train_loss),
                rate=format_rate(event.samples_per_s),
            )
        elif isinstance(event, EpochEnded):
            self._show_notes()
            self.progress.update(self._task(event.run), completed=event.step, epoch=event.epoch)
        elif isinstance(event, RunEnded):
            task = self._task(event.run)
            self.progress.update(
                task, completed=event.step, epoch=event.epochs_completed, status=event.status
            )
            self.progress.stop_task(task)
            if event.status != "finished" and event.reason:
                line = Text(f"{event.run}: ", style="bold")
                line.append(event.status, style=STATUS_STYLES.get(event.status, ""))
                line.append(f" ({event.reason})")
                self.progress.console.print(line)
        elif isinstance(event, ExperimentEnded):
            self._show_notes()

    def _note(self, run: str, group: str, notes: list[str]) -> None:
        """Keep a starting run's notes until training begins; print them at once after that (a
        run started late, or again when resumed), unless an "all runs" or a configuration's line
        already said it."""
        if run not in self._started:
            self._started.append(run)
        self._groups[run] = group
        fresh = [n for n in notes if n not in self._notes.get(run, [])]
        self._notes.setdefault(run, []).extend(fresh)
        if self._notes_shown:
            for note in fresh:
                if (ALL_RUNS, note) not in self._said and (group, note) not in self._said:
                    self._print_note(run, note)

    def _show_notes(self) -> None:
        """Print the kept notes once: a note every started run has (two runs or more) as one
        `note: all runs: ...` line, a note every seed of a configuration has as one
        `note: adam (3 seeds): ...` line, the others as `note: RUN: ...` in run order."""
        if self._notes_shown:
            return
        self._notes_shown = True
        runs = [RunNotes(r, self._groups[r], tuple(self._notes.get(r, []))) for r in self._started]
        for line in note_lines(runs):
            self._said.add((line.scope, line.note))
            self._print_note(line.who, line.note)

    def _print_note(self, who: str, note: str) -> None:
        self.progress.console.print(Text(f"note: {who}: {note}", style="dim"))

    def close(self) -> None:
        self._show_notes()  # an experiment stopped before any progress still says them
        if self._live:
            self._live = False
            self.progress.stop()
