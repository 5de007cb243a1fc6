"""Typed, versioned, JSON-serialisable events: the only thing the engine tells the world.

Sinks (run store, console, TUI) consume them; replaying `events.jsonl` through the same
sinks rebuilds any view.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 1

RUN_STATUSES = ("finished", "early_stopped", "diverged", "stopped", "failed")


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    run: str

    def to_dict(self) -> dict[str, Any]:
        # Shallow: every field holds JSON-ready data already, and the driver turns every
        # event of every run into a dict and back (dataclasses.asdict deep-copies, at a cost
        # per event that showed in the driver's share of small models' training).
        return {"v": SCHEMA_VERSION, "type": self.kind, **{name: getattr(self, name) for name in _field_names(type(self))}}


@dataclass
class ExperimentStarted(Event):
    """Once per experiment, before any run starts. `run` is empty."""

    kind: ClassVar[str] = "experiment_started"
    preset: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    run_names: list[str] = field(default_factory=list)
    time: float = 0.0


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    spec: dict[str, Any] = field(default_factory=dict)
    n_params: int = 0
    init_fingerprint: str = ""
    data_fingerprint: str = ""
    steps_per_epoch: int = 0
    total_steps: int = 0
    notes: list[str] = field(default_factory=list)
    resumed_step: int = 0  # > 0 when resumed from a checkpoint: later points of this run supersede
    # kind -> where its code came from (optlab.spec.provenance); the hash of the plugin parts
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    plugin_fingerprint: str = ""
    # Where it trains: backend, host, device, gpu (name, on CUDA), pid (of the training process).
    placement: dict[str, Any] = field(default_factory=dict)


@dataclass
class Progress(Event):
    """Once per reporting interval (never per step)."""

    kind: ClassVar[str] = "progress"
    step: int = 0
    epoch: int = 0  # 1-based epoch in progress
    samples_seen: int = 0
    train_loss: float = 0.0  # mean over the interval
    lr: float = 0.0
    elapsed_s: float = 0.0
    samples_per_s: float = 0.0
    grad_evals: int = 0  # forward+backward passes so far (more than steps with a closure optimizer)


@dataclass
class EpochEnded(Event):
    kind: ClassVar[str] = "epoch_ended"
    epoch: int = 0
    step: int = 0
    samples_seen: int = 0
    train_loss: float = 0.0
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_rmse: float | None = None  # regression: in the target's units, comparable across losses
    lr: float = 0.0
    epoch_s: float = 0.0
    elapsed_s: float = 0.0
    improved: bool = False  # this epoch is the best so far (early-stopping metric)


@dataclass
class RunEnded(Event):
    kind: ClassVar[str] = "run_ended"
    status: str = "finished"  # one of RUN_STATUSES
    reason: str = ""
    detail: str = ""  # e.g. the traceback of a failed run
    epochs_completed: int = 0
    step: int = 0
    best_epoch: int | None = None
    wall_time_s: float = 0.0
    train_samples_per_s: float = 0.0
    grad_evals: int = 0
    test: dict[str, Any] | None = None


@dataclass
class ExperimentEnded(Event):
    kind: ClassVar[str] = "experiment_ended"
    status: str = "finished"  # finished | interrupted
    wall_time_s: float = 0.0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (ExperimentStarted, RunStarted, Progress, EpochEnded, RunEnded, ExperimentEnded)
}


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    """Each event class's field names, looked up once (functools.cache would want a hashable
    argument, which a dataclass with eq=True does not promise its type checker)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of `Event.to_dict`; unknown fields from newer writers are ignored."""
    cls = EVENT_TYPES[data["type"]]
    return cls(**{k: data[k] for k in _field_names(cls) if k in data})
