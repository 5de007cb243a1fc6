"""What the driver knows of one run (`DrivenRun`): plain data from its events, never its
trainer; the pacing shares `Runner` reads and the state it restarts the run from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optlab.training.events import EpochEnded, Event, Progress, RunStarted
from optlab.training.pipelining import IntervalClock

if TYPE_CHECKING:
    from optlab.spec import ResolvedRun
    from optlab.training.balance import Move
    from optlab.training.executor import State


@dataclass
class DrivenRun:
    """What the driver knows of one run: plain data from its events, never its trainer."""

    spec: ResolvedRun
    state: str = "starting"  # starting | active | ended
    inflight: int = 1  # requests sent and not answered yet (the start, at first)
    stopping: bool = False  # asked to stop: no more advances; the stop goes once none is in flight
    stop_sent: bool = False
    step: int = 0
    total_steps: int = 1
    last_delta: float = 1.0  # share of the work its last interval did: the pacing slack
    epoch: int = 0
    best_epoch: int | None = None
    elapsed_s: float = 0.0
    samples_per_s: float = 0.0
    clock: IntervalClock = field(default_factory=IntervalClock)  # how long its intervals train
    # A run that started late (it waited for resources, or restarts from a checkpoint) counts
    # as this much further on for pacing: the runs ahead of it do not wait for it to catch up.
    offset: float = 0.0
    restarts: int = 0
    # Moving to another worker (`optlab.training.balance`): where to, until its old worker has
    # handed its state over; then `rejoining` until it has started there (that start is no
    # new start in its record), and `moves` made or tried so far.
    moving: Move | None = None
    rejoining: bool = False
    moves: int = 0
    checkpoint: State | None = None  # its last, to restart it when its worker dies

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total_steps)

    @property
    def paced(self) -> float:
        return self.fraction + self.offset

    def track(self, event: Event) -> None:
        """Follow the run from its own events."""
        if isinstance(event, RunStarted):
            self.total_steps, self.step = event.total_steps, event.resumed_step
            self.clock.restart()
        elif isinstance(event, Progress):
            self.clock.report(event.step, event.elapsed_s)
            self.step, self.elapsed_s, self.samples_per_s = event.step, event.elapsed_s, event.samples_per_s
        elif isinstance(event, EpochEnded):
            self.step, self.epoch = event.step, event.epoch
            if event.improved:
                self.best_epoch = event.epoch


def last_epoch_end(events: list[dict[str, Any]]) -> int:
    """The index of a reply's last EpochEnded (-1: none): where its state was taken."""
    return max((i for i, e in enumerate(events) if e.get("type") == EpochEnded.kind), default=-1)
