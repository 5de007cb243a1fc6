"""Fold events into the results document (results.json). Live and replayed runs use the
same fold, so a result never depends on which front end produced it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from optlab import __version__
from optlab.runs.aggregate import aggregate
from optlab.runs.target import time_to_target
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    Progress,
    RunEnded,
    RunStarted,
)

RESULTS_VERSION = 1
HISTORY_KEYS = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_rmse", "lr", "epoch_s",
    "samples_seen",  # training samples seen by that epoch's end (time to target)
)


def torch_version() -> str | None:
    """The installed torch's version, read from its metadata (importing torch costs seconds)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def empty_run(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "status": "pending",
        "reason": "",
        "config": {},
        "n_params": None,
        "init_fingerprint": "",
        "data_fingerprint": "",
        "notes": [],
        "provenance": {},
        "plugin_fingerprint": "",
        "placement": None,  # backend, host, device, gpu, pid: where it trains (RunStarted)
        "steps_per_epoch": None,
        "total_steps": None,
        "epochs_completed": 0,
        "best_epoch": None,
        "wall_time_s": 0.0,
        "train_samples_per_s": 0.0,
        "grad_evals": 0,  # forward+backward passes (LBFGS-style optimizers take several per step)
        "progress": None,
        "history": [],
        "time_to_target": None,
        "test": None,
    }


class ResultsBuilder:
    """A sink whose state is the results document."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {
            "results_version": RESULTS_VERSION,
            "optlab_version": __version__,
            "torch_version": torch_version(),
            "status": "running",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wall_time_s": 0.0,
            "preset": {},
            "dataset": {},
            "device": "",
            "runs": [],
            "aggregates": None,  # over seeds, when some configuration ran over more than one
        }
        self._runs: dict[str, dict[str, Any]] = {}
        self._wall: dict[str, float] = {}  # per run, the sum of its recorded epochs' times (time to target)
        self._deferred = False  # inside `deferred()`: aggregates wait for the batch's end
        self._stale = False

    def run(self, name: str) -> dict[str, Any]:
        if name not in self._runs:
            self._runs[name] = empty_run(name)
            self.doc["runs"].append(self._runs[name])
        return self._runs[name]

    def handle(self, event: Event) -> None:
        if isinstance(event, ExperimentStarted):
            self.doc.update(preset=event.preset, dataset=event.dataset, device=event.device, status="running")
            for name in event.run_names:
                self.run(name)
        elif isinstance(event, RunStarted):
            run = self.run(event.run)
            run.update(
                status="running",
                config=event.spec,
                n_params=event.n_params,
                init_fingerprint=event.init_fingerprint,
                data_fingerprint=event.data_fingerprint,
                steps_per_epoch=event.steps_per_epoch,
                total_steps=event.total_steps,
                notes=list(event.notes),
                provenance=event.provenance,
                plugin_fingerprint=event.plugin_fingerprint,
                placement=dict(event.placement) or None,
            )
        elif isinstance(event, Progress):
            run = self.run(event.run)
            run["progress"] = {
                k: getattr(event, k)
                for k in ("step", "epoch", "samples_seen", "train_loss", "lr", "elapsed_s", "samples_per_s",
                          "grad_evals")
            }
            run["wall_time_s"] = event.elapsed_s
            run["grad_evals"] = event.grad_evals
            run["train_samples_per_s"] = event.samples_per_s
        elif isinstance(event, EpochEnded):
            run = self.run(event.run)
            record = {k: getattr(event, k) for k in HISTORY_KEYS}
            self._add_epoch(event.run, run, record)
            run["epochs_completed"] = event.epoch
        elif isinstance(event, RunEnded):
            run = self.run(event.run)
            run.update(
                status=event.status,
                reason=event.reason,
                epochs_completed=event.epochs_completed or run["epochs_completed"],
                best_epoch=event.best_epoch,
                wall_time_s=event.wall_time_s,
                train_samples_per_s=event.train_samples_per_s,
                grad_evals=event.grad_evals or run["grad_evals"],
                test=event.test,
            )
            if run["time_to_target"] is None:  # a run that ended before its first epoch
                run["time_to_target"] = time_to_target(run["history"], self.doc["preset"].get("target"))
            self._update_aggregates()
        elif isinstance(event, ExperimentEnded):
            self.doc["status"] = event.status
            self.doc["wall_time_s"] = event.wall_time_s
            self._update_aggregates()

    def _add_epoch(self, name: str, run: dict[str, Any], record: dict[str, Any]) -> None:
        """Append an epoch's record at a cost that does not grow with the history. A resumed
        run trains again from its checkpoint and repeats epochs: from the first repeated one
        on, the records of the abandoned attempt are dropped (the new ones replace them)."""
        history: list[dict[str, Any]] = run["history"]
        target = self.doc["preset"].get("target")
        if history and history[-1]["epoch"] >= record["epoch"]:
            history[:] = [h for h in history if h["epoch"] < record["epoch"]]
            self._wall[name] = sum(_seconds(h.get("epoch_s")) for h in history)
            run["time_to_target"] = time_to_target(history, target)
        history.append(record)
        reached = run["time_to_target"] is not None and run["time_to_target"].get("reached")
        if not reached:
            run["time_to_target"] = time_to_target([record], target, self._wall.get(name, 0.0))
        self._wall[name] = self._wall.get(name, 0.0) + _seconds(record.get("epoch_s"))

    def _update_aggregates(self) -> None:
        # At run ends only: recomputing the history bands at every epoch end would cost
        # O(runs x epochs) per event; a live view computes its bands with `history_bands`.
        if self._deferred:
            self._stale = True
            return
        self.doc["aggregates"] = aggregate(self.doc)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Fold a batch of events with the aggregates computed once, at the end: a view that
        replays a 500-run sweep would otherwise recompute them at each of 500 run ends
        (quadratic: 40 s instead of about 1 s)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
            if self._stale:
                self._stale = False
                self._update_aggregates()


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def replay(events: list[Event]) -> dict[str, Any]:
    builder = ResultsBuilder()
    with builder.deferred():
        for event in events:
            builder.handle(event)
    return builder.doc
