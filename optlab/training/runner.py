"""Many runs side by side: advance trainers in interleaved chunks and fan events out to sinks.

At every moment the runs have done about the same share of their work (the runner always
advances the one furthest behind), so a live view compares like with like.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import torch

from optlab.data.datasets import DatasetBundle
from optlab.errors import StorageError
from optlab.spec import ResolvedRun
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    RunEnded,
)
from optlab.training.trainer import Trainer


@runtime_checkable
class Sink(Protocol):
    def handle(self, event: Event) -> None: ...


class Control:
    """Thread-safe requests from a front end, honoured between chunks (never mid-step)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused = False
        self._stop: set[str] = set()
        self._stop_all = False

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def stop(self, run: str | None = None) -> None:
        with self._lock:
            if run is None:
                self._stop_all = True
            else:
                self._stop.add(run)

    def poll(self) -> None:
        """Hook for controls that live elsewhere (e.g. a file in the run directory)."""

    @property
    def paused(self) -> bool:
        return self._paused

    def should_stop(self, run: str) -> bool:
        with self._lock:
            return self._stop_all or run in self._stop


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Runner:
    def __init__(
        self,
        specs: list[ResolvedRun],
        data: DatasetBundle,
        device: str = "cpu",
        sinks: Iterable[Any] = (),
        control: Control | None = None,
        preset: dict[str, Any] | None = None,
        resume: dict[str, dict[str, Any]] | None = None,
        finished: Iterable[str] = (),
    ) -> None:
        self.specs = specs
        self.data = data
        self.device = device
        self.sinks = list(sinks)
        self.control = control or Control()
        self.preset = preset or {}
        self.resume = resume or {}
        self.finished = set(finished)
        self.trainers: list[Trainer] = []
        self.results: dict[str, RunEnded] = {}

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    def _emit_best_effort(self, event: Event) -> None:
        for sink in self.sinks:
            with contextlib.suppress(StorageError):
                sink.handle(event)

    def _artifact(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            fn = getattr(sink, method, None)
            if fn is not None:
                fn(*args)

    def _wants(self, method: str) -> bool:
        return any(hasattr(s, method) for s in self.sinks)

    def _finish(self, trainer: Trainer, ended: RunEnded) -> None:
        self.emit(ended)
        self.results[trainer.spec.name] = ended
        if trainer.predictions is not None:
            self._artifact("predictions", trainer.spec.name, trainer.predictions)

    def _start(self) -> list[Trainer]:
        active = []
        for spec in self.specs:
            if spec.name in self.finished:
                continue
            try:
                trainer = Trainer(spec, self.data, self.device)
                if spec.name in self.resume:
                    trainer.load_state_dict(self.resume[spec.name])
            except Exception as exc:  # a run that cannot be built, or resumed, fails alone
                self.emit(RunEnded(run=spec.name, status="failed", reason=f"{type(exc).__name__}: {exc}",
                                   detail=traceback.format_exc()))
                continue
            self.trainers.append(trainer)
            self.emit(trainer.started_event())
            active.append(trainer)
        return active

    def run(self) -> dict[str, RunEnded]:
        """Train every run to its end. KeyboardInterrupt stops all runs, keeps what was done,
        and is raised again for the caller to exit."""
        t0 = time.perf_counter()
        self.emit(
            ExperimentStarted(
                run="",
                preset=self.preset,
                dataset=self.data.facts(),
                device=self.device,
                run_names=[s.name for s in self.specs],
                time=time.time(),
            )
        )
        active = self._start()
        checkpoints = self._wants("checkpoint")
        try:
            while active:
                self.control.poll()
                for trainer in [t for t in active if self.control.should_stop(t.spec.name)]:
                    self._finish(trainer, trainer.stop())
                    active.remove(trainer)
                if not active:
                    break
                if self.control.paused:
                    time.sleep(0.05)
                    continue
                trainer = min(active, key=lambda t: t.fraction_done)
                try:
                    events = trainer.advance()
                except Exception as exc:
                    events = [trainer.fail(exc, traceback.format_exc())]
                for event in events:
                    if isinstance(event, RunEnded):
                        self._finish(trainer, event)
                    else:
                        self.emit(event)
                    if isinstance(event, EpochEnded) and checkpoints:
                        self._artifact("checkpoint", trainer.spec.name, trainer.state_dict(), event.improved)
                if trainer.done:
                    active.remove(trainer)
        except KeyboardInterrupt:
            for trainer in active:
                if not trainer.done:
                    self._finish(trainer, trainer.end("stopped", "interrupted", evaluate_test=False))
            self.emit(ExperimentEnded(run="", status="interrupted", wall_time_s=time.perf_counter() - t0))
            raise
        except StorageError as exc:
            # The record cannot be kept: stop every run rather than train without one, tell
            # the sinks that still work (the console), and let the caller report it.
            for trainer in active:
                if not trainer.done:
                    self._emit_best_effort(trainer.end("stopped", str(exc), evaluate_test=False))
            self._emit_best_effort(ExperimentEnded(run="", status="failed", wall_time_s=time.perf_counter() - t0))
            raise
        self.emit(ExperimentEnded(run="", status="finished", wall_time_s=time.perf_counter() - t0))
        return self.results
