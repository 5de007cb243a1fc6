"""The driver: many runs side by side, trained by an executor, their events fanned out to sinks.

The driver owns the sinks, the controls, pacing, the failure policy and the order of events;
it is the only writer of the run directory whatever the backend. Executors
(`optlab.training.executor`, `optlab.training.processes`) own the trainers and answer with
plain data. By default the runs stay at about the same share of their work (the driver advances
the one furthest behind), so a live view compares like with like; `pace="free"` lets each
worker go as fast as it can.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from optlab.errors import StorageError
from optlab.training.balance import Balancer, Balancing, Movable
from optlab.training.checkpoint_policy import CheckpointPolicy
from optlab.training.control import Control
from optlab.training.driven_run import DrivenRun, last_epoch_end
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    RunEnded,
    RunStarted,
    event_from_dict,
)
from optlab.training.executor import Executor, LocalExecutor, Reply, unpack_state
from optlab.training.pipelining import budget_s, room

if TYPE_CHECKING:
    from optlab.data.datasets import DatasetBundle
    from optlab.spec import ResolvedRun

PACES = ("even", "free")
# The first runs wait this long at most for the rest of the first wave: on a shared Ray cluster
# other jobs may hold what `capacity` counted, and the runs that did start must not wait for ever.
FIRST_WAVE_WAIT_S = 30.0
# After an interrupt, how long the runs' last replies and their stop (with a state to resume
# from) may take before the driver ends them itself.
WIND_DOWN_S = 10.0


@runtime_checkable
class Sink(Protocol):
    def handle(self, event: Event) -> None: ...


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Runner:
    """The driver. `executor` defaults to the local one (every run in this process, on `device`)."""

    def __init__(
        self,
        specs: list[ResolvedRun],
        data: DatasetBundle | None,
        device: str = "cpu",
        sinks: Iterable[Any] = (),
        control: Control | None = None,
        preset: dict[str, Any] | None = None,
        resume: dict[str, dict[str, Any]] | None = None,
        finished: Iterable[str] = (),
        executor: Executor | None = None,
        pace: str = "even",
        max_restarts: int = 2,
        checkpoints: CheckpointPolicy | None = None,
        epoch_decisions: bool = False,
        balancer: Balancer | bool = True,
    ) -> None:
        """`epoch_decisions`: a sink decides at each epoch end (a pruner stopping a trial), so a
        request never trains past one; otherwise a request with short intervals may.
        `balancer`: moves runs between an executor's workers by their speed where it can move
        them (True: the default policy, False: never)."""
        if pace not in PACES:
            raise ValueError(f"pace {pace!r}: expected one of {', '.join(PACES)}")
        if executor is None:
            if data is None:
                raise ValueError("the local executor needs the dataset")
            executor = LocalExecutor(data, device)
        self.specs = specs
        self.data = data
        self.device = device
        self.sinks = list(sinks)
        self.control = control or Control()
        self.preset = preset or {}
        self.resume = resume or {}
        self.finished = set(finished)
        self.executor = executor
        self.pace = pace
        self.max_restarts = max_restarts
        self.checkpoint_policy = checkpoints or CheckpointPolicy()
        self.epoch_decisions = epoch_decisions
        policy = Balancer() if balancer is True else balancer if isinstance(balancer, Balancer) else None
        self.balancing = Balancing(policy, executor) if policy and isinstance(executor, Movable) else None
        self.results: dict[str, RunEnded] = {}
        self._runs: dict[str, DrivenRun] = {}
        self._first_wave = 0  # how many runs must be up before any advances (pace "even")
        self._last_up = time.monotonic()  # when a run last came up
        self._checkpoints = False
        self._interrupted: type[KeyboardInterrupt] | None = None

    def interrupt(self, raise_as: type[KeyboardInterrupt] = KeyboardInterrupt) -> None:
        """Stop every run at the next safe point, each with a state to resume from, then raise
        `raise_as` from `run` (a signal handler's way to interrupt: a KeyboardInterrupt raised
        mid-step would leave no state that resumes exactly)."""
        self._interrupted = raise_as

    @property
    def interrupted(self) -> type[KeyboardInterrupt] | None:
        """What `interrupt` asked to raise; set too when it came after the last step (then `run`
        returned normally: every run had ended)."""
        return self._interrupted

    # ------------------------------------------------------------------ sinks

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

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, RunEnded]:
        """Train every run to its end. KeyboardInterrupt stops all runs, keeps what was done,
        and is raised again for the caller to exit."""
        t0 = time.perf_counter()
        self.emit(
            ExperimentStarted(
                run="",
                preset=self.preset,
                dataset=self.data.facts() if self.data is not None else {},
                device=self.executor.device_label,
                run_names=[s.name for s in self.specs],
                time=time.time(),
            )
        )
        self._checkpoints = self._wants("checkpoint")
        try:
            for spec in self.specs:
                if spec.name in self.finished:
                    continue
                run = self._runs[spec.name] = DrivenRun(spec, checkpoint=self.resume.get(spec.name))
                self.executor.start(spec, run.checkpoint)
            # The runs that can train at once start together: with pace "even", none advances
            # before that many are up (a Ray actor that is quicker to start would otherwise train
            # alone); the runs beyond that wait for resources and join when they get them. Which
            # runs get the resources first is the scheduler's choice, not the preset's order:
            # waiting for particular ones would wait for ever on a run that waits for them.
            capacity = getattr(self.executor, "capacity", None) or len(self._runs)
            self._first_wave = min(capacity, len(self._runs)) if self.pace == "even" else 0
            try:
                self._drive()
            except KeyboardInterrupt:
                self._end_all("interrupted", self.emit)
                self.emit(ExperimentEnded(run="", status="interrupted", wall_time_s=time.perf_counter() - t0))
                raise
            except StorageError as exc:
                # The record cannot be kept: stop every run rather than train without one, tell
                # the sinks that still work (the console), and let the caller report it.
                self._end_all(str(exc), self._emit_best_effort)
                self._emit_best_effort(
                    ExperimentEnded(run="", status="failed", wall_time_s=time.perf_counter() - t0)
                )
                raise
        finally:
            self.executor.close()
        self.emit(ExperimentEnded(run="", status="finished", wall_time_s=time.perf_counter() - t0))
        return self.results

    def _drive(self) -> None:
        runs = self._runs.values()
        while any(r.state != "ended" for r in runs):
            if self._interrupted is not None:
                self._wind_down()
                raise self._interrupted()
            self.control.poll()
            for run in runs:
                if run.state != "active":
                    continue
                if not run.stopping and self.control.should_stop(run.spec.name):
                    run.stopping = True
                if run.stopping and not run.stop_sent and not run.inflight:
                    run.stop_sent, run.inflight = True, 1
                    self.executor.stop(run.spec.name, "stopped by the user", checkpoint=self._keeps_state)
                elif run.moving is not None and not run.inflight and self.balancing is not None:
                    self.balancing.hand_over(run)
            if not self.control.paused:
                self._dispatch()
                if self.balancing is not None:
                    self.balancing.consider(self._runs)
            for reply in self.executor.collect(0.05):
                self._handle(reply)

    def _dispatch(self) -> None:
        """Give every worker with room the run of its own that is furthest behind. With pace
        "even", a run further ahead of the slowest run than one request waits its turn. How
        much a request asks for and how many a worker holds: `optlab.training.pipelining`."""
        started = [r for r in self._runs.values() if r.state == "active"]
        if self._first_wave:
            up = sum(r.state != "starting" for r in self._runs.values())
            if up < self._first_wave and not (started and time.monotonic() - self._last_up > FIRST_WAVE_WAIT_S):
                return
            self._first_wave = 0
        if not started:
            return
        floor = min(r.paced for r in started)
        depth = getattr(self.executor, "depth", 1)
        even = self.pace == "even"
        load: dict[str, int] = {}
        slot_room: dict[str, int] = {}  # a worker holds as many requests as its slowest run allows
        # (run, its slot, the requests it may have in flight, its pacing share, its progress):
        # read once here, since the dispatch runs for every reply (its cost was a share of a
        # small model's training).
        candidates: list[tuple[DrivenRun, str, int, float, float]] = []
        for name, run in self._runs.items():
            slot = self.executor.slot(name)
            load[slot] = load.get(slot, 0) + run.inflight
            if run.state == "ended":
                continue
            run_room = room(run.clock, depth) if depth > 1 else 1
            slot_room[slot] = min(slot_room.get(slot, depth), run_room)
            if run.state == "active" and not run.stopping and run.moving is None and not run.rejoining:
                candidates.append((run, slot, run_room, run.paced, run.fraction))
        policy = self.checkpoint_policy if self._keeps_state else None
        while True:
            chosen: dict[str, tuple[DrivenRun, float]] = {}
            for run, slot, run_room, paced, fraction in candidates:
                if run.inflight >= run_room or load[slot] >= slot_room.get(slot, 1):
                    continue
                if even and paced > floor + run.last_delta + 1e-9:
                    continue
                if slot not in chosen or fraction < chosen[slot][1]:
                    chosen[slot] = (run, fraction)
            if not chosen:
                return
            for slot, (run, _) in chosen.items():
                run.inflight += 1
                load[slot] += 1
                self.executor.advance(run.spec.name, policy, budget_s(run.clock, depth), not self.epoch_decisions)

    def _handle(self, reply: Reply) -> None:
        run = self._runs.get(reply.run)
        if run is None:
            return
        if run.state == "ended":
            # What a worker said about a run that has ended meanwhile (its second request in
            # flight, on a pipelining worker): nothing to read, but the request is answered. Left
            # counted, it held its worker's room for good: two such runs on one worker stopped
            # every other run there from being asked again (a study's wave hung at its end).
            run.inflight = 0 if reply.kind == "lost" else max(0, run.inflight - 1)
            return
        if reply.kind == "lost":
            self._restart(run, reply.detail)
            return
        if reply.kind == "handed" and self.balancing is not None:
            self.balancing.handed(run, reply)
            return
        run.inflight = max(0, run.inflight - 1)
        before = run.fraction
        # A state comes at the reply's last epoch end, or before the RunEnded of a stopped run.
        unsaved = reply.checkpoint is not None or reply.best is not None
        last_epoch = last_epoch_end(reply.events) if unsaved else -1
        for i, data in enumerate(reply.events):
            event = event_from_dict(data)
            if isinstance(event, RunStarted) and run.rejoining:
                # Moved to another worker, it goes on where it was: not a new start in its
                # record (whose placement stays its device; only the worker's pid changed).
                run.rejoining = False
                continue
            if isinstance(event, RunEnded):
                if unsaved:
                    unsaved = self._save(run, reply, improved=False)
                self._finish(run, event, reply.predictions)
                continue
            run.track(event)
            if isinstance(event, RunStarted):
                run.state = "active"
                self._last_up = time.monotonic()
                self._join(run)
            self.emit(event)
            if i == last_epoch and isinstance(event, EpochEnded) and unsaved:
                unsaved = self._save(run, reply, event.improved)
        if reply.kind == "advanced" and run.fraction > before:
            run.last_delta = run.fraction - before

    @property
    def _keeps_state(self) -> bool:
        """Checkpoints are wanted: a sink writes them, or the driver restarts runs from them."""
        return self._checkpoints or self.executor.can_lose_workers

    def _save(self, run: DrivenRun, reply: Reply, improved: bool) -> bool:
        """Keep a reply's states: the last to restart the run from, if its worker can be lost;
        checkpoint-last.pt (and -best.pt when the epoch improved), and the best state held
        back since the last checkpoint. Returns False: nothing left unsaved."""
        if reply.checkpoint is not None and self.executor.can_lose_workers:
            run.checkpoint = reply.checkpoint
        if self._checkpoints:
            if reply.best is not None:
                self._artifact("best_checkpoint", run.spec.name, unpack_state(reply.best))
            if reply.checkpoint is not None:
                self._artifact("checkpoint", run.spec.name, unpack_state(reply.checkpoint), improved)
        return False

    def _wind_down(self) -> None:
        """After an interrupt: let the requests in flight answer (their events are kept), then
        stop every run with its state, within WIND_DOWN_S; `run` ends whatever is left."""
        deadline = time.monotonic() + WIND_DOWN_S
        while time.monotonic() < deadline:
            active = [r for r in self._runs.values() if r.state == "active"]
            if not active:  # runs still starting (waiting for resources) are ended by `run`
                return
            for run in active:
                if not run.inflight and not run.stop_sent:
                    run.stop_sent, run.inflight = True, 1
                    self.executor.stop(run.spec.name, "interrupted", evaluate_test=False,
                                       checkpoint=self._keeps_state)
            for reply in self.executor.collect(0.05):
                self._handle(reply)

    def _join(self, run: DrivenRun) -> None:
        """Pace a run that starts while the others are well under way from where they are."""
        run.offset = 0.0
        others = [r for r in self._runs.values() if r is not run and r.state == "active"]
        if not others:
            return
        floor = min(r.paced for r in others)
        intervals = [r.last_delta for r in others if r.last_delta < 1.0]  # of runs that advanced
        # Runs of the first wave start an interval or so apart: only a real gap is an offset.
        if intervals and floor - run.fraction > 2 * max(intervals):
            run.offset = floor - run.fraction

    def _finish(self, run: DrivenRun, ended: RunEnded, predictions: dict[str, Any] | None) -> None:
        self.emit(ended)
        self.results[run.spec.name] = ended
        run.state, run.checkpoint = "ended", None
        if predictions is not None:
            self._artifact("predictions", run.spec.name, predictions)
        self.executor.release(run.spec.name)

    def _ended_here(self, run: DrivenRun, status: str, reason: str) -> RunEnded:
        """A RunEnded from what the driver saw, for a run whose worker cannot say it."""
        return RunEnded(
            run=run.spec.name, status=status, reason=reason, epochs_completed=run.epoch, step=run.step,
            best_epoch=run.best_epoch, wall_time_s=run.elapsed_s, train_samples_per_s=run.samples_per_s,
        )

    def _restart(self, run: DrivenRun, why: str) -> None:
        """A worker died (not the run: an exception or divergence ends a run, never a worker):
        start the run again from its last checkpoint on a new worker, a bounded number of times."""
        run.restarts += 1
        if run.restarts > self.max_restarts:
            reason = (f"its worker died {run.restarts} times, the last time {why}; "
                      f"not restarted again (max restarts {self.max_restarts})")
            self._finish(run, self._ended_here(run, "failed", reason), None)
            return
        run.state, run.inflight, run.stop_sent = "starting", 1, False
        run.moving, run.rejoining = None, False
        self.executor.start(run.spec, run.checkpoint)

    def _end_all(self, reason: str, emit: Any) -> None:
        for run in self._runs.values():
            if run.state == "ended":
                continue
            answer = None
            with contextlib.suppress(Exception):  # a worker that cannot answer: the driver says it
                answer = self.executor.end_now(run.spec.name, reason)
            ended = event_from_dict(answer) if answer else None
            if not isinstance(ended, RunEnded):
                ended = self._ended_here(run, "stopped", reason)
            emit(ended)
            self.results[run.spec.name] = ended
            run.state = "ended"

