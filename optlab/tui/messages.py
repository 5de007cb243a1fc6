"""The TUI's typed messages: what a file read, a worker or the user's quit choice found out,
posted to the screen that acts on it (or, bubbling past it, to the app).

Workers post these instead of calling back into the UI (`post_message` is thread-safe and does
not block; `App.call_from_thread` waits for the callback), and the polling timer posts what it
read, so what happens next lives in one `on_*` handler of the screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textual.message import Message

from optlab.training.events import Event


class EventsArrived(Message):
    """New lines of events.jsonl, in order. Never coalesced: every event folds into the state."""

    bubble = False  # handled by the screen it is posted to

    def __init__(self, events: Sequence[Event]) -> None:
        super().__init__()
        self.events = list(events)


class StateChanged(Message):
    """The folded state moved: draw what is due. Several in the queue say no more than one, so a
    newer one replaces an older (as toolong's `PendingLines`): a backlog of event batches costs
    one redraw, not one each."""

    bubble = False  # handled by the screen it is posted to

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StateChanged)


class ChildExited(Message):
    """The training child this TUI started has exited (read after the events it wrote)."""

    bubble = False  # handled by the screen it is posted to

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code


class TrainingStopped(Message):
    """The stop the user asked for is done: the child has exited, or (a viewed run directory)
    its trainer is gone or did not answer in time."""

    bubble = False  # handled by the screen it is posted to


class Detached(Message):
    """The user quit and left training running; the app exits and says how to reattach."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class StopRequested(Message):
    """The user quit with "stop": the app reports partial results when it exits."""


class ReportWritten(Message):
    """The report worker wrote report.html (and opened it where this machine has a browser)."""

    bubble = False  # handled by the screen it is posted to

    def __init__(self, path: Path, opened: bool) -> None:
        super().__init__()
        self.path = path
        self.opened = opened


class ReportFailed(Message):
    """The report worker could not write the report."""

    bubble = False  # handled by the screen it is posted to

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class TuneSummaryRead(Message):
    """tune.json, read once a tuning study has ended: the tuned ranking and every trial as told."""

    bubble = False  # handled by the screen it is posted to

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__()
        self.summary = summary
