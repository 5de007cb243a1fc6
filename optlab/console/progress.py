"""Live progress on stderr: one Rich progress bar per run, fed by engine events."""

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

from optlab.console.tables import STATUS_STYLES
from optlab.runs.reports import format_rate
from optlab.training.events import EpochEnded, Event, ExperimentStarted, RunEnded, RunStarted
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
            task = self._task(event.run)
            self.progress.update(task, total=event.total_steps, epochs=event.spec.get("epochs", "?"))
            self.progress.start_task(task)
        elif isinstance(event, ProgressEvent):
            self.progress.update(
                self._task(event.run),
                completed=event.step,
                epoch=event.epoch,
                loss=format_loss(event.train_loss),
                rate=format_rate(event.samples_per_s),
            )
        elif isinstance(event, EpochEnded):
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

    def close(self) -> None:
        if self._live:
            self._live = False
            self.progress.stop()
