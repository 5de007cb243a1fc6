"""The tuning service: every candidate (a run of the preset) gets the same number of trials,
trained by the ordinary driver and executors into one run directory, then its best trial is
retrained over the final seeds.

Optuna's ask-and-tell: per wave, each candidate's study is asked for up to `parallel` trials;
each trial becomes a `ResolvedRun` (the candidate's spec with the drawn values, named
`CANDIDATE#N`), the wave trains side by side through a `Runner`, and every trial is told its
objective: the best validation value of its epochs. A pruned trial (the same pruner for every
candidate, over epochs) is stopped by the driver and told PRUNED; a diverged or failed one is
told the worst value and kept. Each counts toward the budget.

The run directory has one writer: this process, through one `RunStore` (events of every wave
appended) and the Optuna storage (`study.db`, SQLite, unless --storage names another).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optlab.data.datasets import DatasetBundle
from optlab.errors import OptlabError, StorageError
from optlab.experiment import BackendOptions, _interrupts_wind_down, make_executor
from optlab.preset.loader import LoadedPreset
from optlab.preset.search import TuneConfig
from optlab.runs.files import atomic_write_json
from optlab.runs.owner import release
from optlab.runs.store import RunStore, load_results
from optlab.spec import ResolvedRun
from optlab.training.control import Control
from optlab.training.events import EpochEnded, Event, ExperimentEnded, ExperimentStarted, RunEnded
from optlab.training.executor import Executor
from optlab.training.runner import Runner
from optlab.tuning.executors import KeptExecutor, keep
from optlab.tuning.space import Space, natural_params, trial_spec
from optlab.tuning.study import (
    create_study,
    make_pruner,
    make_sampler,
    planned_points,
    planned_sampler,
    qmc_points,
    require_optuna,
)

STUDY_FILE = "study.db"
SETTINGS_FILE = "tune-settings.json"  # what `optlab resume` needs to continue the study
COMPLETED = ("finished", "early_stopped")


@dataclass
class Trial:
    """One trial as the budget table and reports see it."""

    number: int
    run: str
    params: dict[str, Any]  # the optimizer's values (momentum, not one_minus_momentum)
    status: str = "running"  # complete | pruned | diverged | failed | interrupted
    value: float | None = None
    curve: list[float] = field(default_factory=list)  # the objective at each epoch
    epochs: int = 0
    steps: int = 0
    wall_time_s: float = 0.0


@dataclass
class Candidate:
    name: str
    spec: ResolvedRun
    space: Space
    study: Any = None
    trials: list[Trial] = field(default_factory=list)
    pending: dict[str, tuple[Any, Trial]] = field(default_factory=dict)  # run name -> (optuna trial, record)
    finals: list[str] = field(default_factory=list)

    def best(self, higher: bool) -> Trial | None:
        scored = [t for t in self.trials if t.status == "complete" and t.value is not None]
        if not scored:
            return None
        return max(scored, key=lambda t: (t.value if higher else -t.value, -t.number))  # type: ignore[operator]


@dataclass
class TuneOutcome:
    candidates: list[Candidate]
    settings: TuneConfig
    storage: str
    results: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    wall_time_s: float = 0.0


@dataclass
class Carry:
    """What a resumed study continues first: the trials of the wave that was cut (asked, never
    told) and the final seeds that had started, with their runs' checkpoints (`runs/resume.py`)."""

    wave: list[ResolvedRun] = field(default_factory=list)
    finals: list[ResolvedRun] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)  # runs that ended for good before the cut


class _Appending:
    """The run store across waves: one ExperimentStarted (the first wave's) and no
    ExperimentEnded (the service writes the one end), so the record reads as one experiment."""

    def __init__(self, store: RunStore, started: bool = False) -> None:
        self.store, self.started = store, started

    def handle(self, event: Event) -> None:
        if isinstance(event, ExperimentEnded) or (isinstance(event, ExperimentStarted) and self.started):
            return
        self.started = self.started or isinstance(event, ExperimentStarted)
        self.store.handle(event)

    def predictions(self, run: str, arrays: dict[str, Any]) -> None:
        self.store.predictions(run, arrays)

    def checkpoint(self, run: str, state: dict[str, Any], best: bool) -> None:
        self.store.checkpoint(run, state, best)

    def best_checkpoint(self, run: str, state: dict[str, Any]) -> None:
        self.store.best_checkpoint(run, state)


class _Watch:
    """Reads each trial's epochs: the objective's curve, reported to Optuna for pruning; a trial
    the pruner stops is asked to stop through the driver's control."""

    def __init__(self, candidates: list[Candidate], objective: str, pruning: bool, control: Control) -> None:
        self.by_run = {run: (c, t) for c in candidates for run, t in c.pending.items()}
        self.objective, self.pruning, self.control = objective, pruning, control
        self.pruned: set[str] = set()

    def handle(self, event: Event) -> None:
        hit = self.by_run.get(event.run)
        if hit is None:
            return
        trial, record = hit[1]
        if isinstance(event, EpochEnded):
            value = getattr(event, self.objective)
            if value is None or value != value:
                return
            record.curve.append(float(value))
            if self.pruning and event.run not in self.pruned:
                trial.report(float(value), event.epoch)
                if trial.should_prune():
                    self.pruned.add(event.run)
                    self.control.stop(event.run)
        elif isinstance(event, RunEnded):
            record.epochs, record.steps, record.wall_time_s = event.epochs_completed, event.step, event.wall_time_s


def candidates_for(loaded: LoadedPreset, wanted: list[str], device: str) -> list[Candidate]:
    """One candidate per configuration (a group's seeds collapse: the final seeds replace them),
    in preset order, each with its checked search space."""
    from optlab.preset.expand import expand
    from optlab.preset.loader import resolve_run
    from optlab.tuning.space import space_for

    data = loaded.preset.data
    if data.val_fraction == 0 and not data.val_size:
        raise OptlabError(f"{loaded.origin}: data.val_fraction = 0: tune selects on validation data; give it a share > 0")
    out: dict[str, Candidate] = {}
    for variant in expand(loaded.preset, loaded.origin):
        if variant.group in out:
            continue
        spec = resolve_run(loaded.preset, variant.run, loaded.origin, device, group=variant.group)
        out[variant.group] = Candidate(variant.group, spec, space_for(spec, variant.run.search, loaded.origin))
    unknown = [w for w in wanted if w not in out]
    if unknown:
        raise OptlabError(f"--run {unknown[0]!r}: no such run in the preset; runs: {', '.join(out)}")
    return [c for name, c in out.items() if not wanted or name in wanted]


def worst(objective: str) -> float:
    return 0.0 if objective == "val_accuracy" else float("inf")


def tune_into(
    root: Path,
    loaded: LoadedPreset,
    candidates: list[Candidate],
    data: DatasetBundle,
    device: str,
    settings: TuneConfig,
    *,
    storage: str | None = None,
    backend: BackendOptions | None = None,
    sinks: Iterable[Any] = (),
    on_wave: Callable[[list[Candidate]], None] = lambda _: None,
    carry: Carry | None = None,
) -> TuneOutcome:
    """Tune every candidate into `root` (claimed by the caller) and retrain the best trials;
    results.json, tune.json and the reports are written at the end, whatever happened.
    With `carry` (`optlab resume`), the candidates come with their studies loaded and their
    trials so far, and the cut wave and final seeds are continued first."""
    from optlab.tuning.report import write_tune_files

    optuna = require_optuna()
    backend = backend or BackendOptions()
    storage = storage or f"sqlite:///{(root / STUDY_FILE).resolve()}"
    higher = settings.objective == "val_accuracy"
    if carry is None:
        atomic_write_json(root / SETTINGS_FILE, {"settings": settings.model_dump(), "storage": storage,
                                                 "candidates": [c.name for c in candidates],
                                                 "threads": backend.threads, "fuse": backend.fuse})
    for c in candidates:
        if c.study is not None:
            continue  # resumed: loaded with its trials
        attrs = {"candidate": c.name, "space": [p.describe() for p in c.space.params], "space_origin": c.space.origin,
                 "budget": settings.budget, "sampler": settings.sampler, "pruner": settings.pruner,
                 "objective": settings.objective, "seed": settings.seed}
        name = c.name if storage.endswith(STUDY_FILE) else f"{root.name}:{c.name}"
        c.study = create_study(storage, name, "maximize" if higher else "minimize",
                               make_sampler(settings.sampler, settings.seed, c.space, settings.budget),
                               make_pruner(settings.pruner, settings.budget), attrs)
    keys = sorted({p.key for c in candidates for p in c.space.params}, key=lambda k: (k != "lr", k))
    points = qmc_points(settings.budget, len(keys), settings.seed)
    plans = {c.name: planned_points(c.space, settings.sampler, settings.budget, settings.seed, keys, points)
             for c in candidates}
    for c in candidates:
        plan = plans[c.name]
        if plan is not None:
            c.study.sampler = planned_sampler(plan, c.study.sampler)
    outcome = TuneOutcome(candidates, settings, storage)
    store = RunStore(root, resume=carry is not None)
    appending = _Appending(store, started=carry is not None)
    preset = loaded.preset.model_dump(mode="json")
    t0 = time.perf_counter()

    carry = carry or Carry()
    kept: list[KeptExecutor] = []  # the study's one executor, made with the first wave (not ray)

    def executor_for(specs: list[ResolvedRun]) -> Executor:
        if backend.name == "ray":
            return make_executor(backend, data, device, specs)
        if not kept:
            kept.append(keep(make_executor(backend, data, device, specs)))
        return kept[0].wave(specs)

    def train(specs: list[ResolvedRun], watch: _Watch | None, control: Control) -> None:
        if all(s.name in carry.done for s in specs):
            return
        extra = [watch] if watch is not None else []
        runner = Runner(specs, data, device, [appending, *extra, *sinks], control, preset=preset,
                        resume=carry.states, finished=carry.done, executor=executor_for(specs), pace=backend.pace,
                        max_restarts=backend.max_restarts, checkpoints=backend.checkpoints,
                        epoch_decisions=watch is not None and watch.pruning)
        # The aggregates over seeds once per wave, not at each run's end: once the final seeds
        # end, each end recomputed them over every trial (quadratic in the study's runs).
        with _interrupts_wind_down(runner), store.builder.deferred():
            runner.run()
        if runner.interrupted is not None:  # a signal after the wave's last step: the study stops too
            raise runner.interrupted()

    try:
        while carry.wave or any(len(c.trials) < settings.budget for c in candidates):
            specs, carry.wave = carry.wave, []
            # A resumed study first finishes the wave that was cut, alone; otherwise every
            # candidate is asked for its next trials (`specs` grows as they are asked).
            asking = not specs
            for c in candidates:
                for _ in range(min(settings.parallel, settings.budget - len(c.trials)) if asking else 0):
                    n = len(c.trials)
                    trial = c.study.ask(c.space.distributions())  # a qmc or grid plan's point n
                    record = Trial(n, f"{c.name}#{n}", natural_params(c.space, trial.params))
                    c.trials.append(record)
                    c.pending[record.run] = (trial, record)
                    specs.append(trial_spec(c.spec, c.space, trial.params, record.run, record.run))
            control = Control()
            watch = _Watch(candidates, settings.objective, settings.pruner != "off", control)
            try:
                train(specs, watch, control)
            finally:
                _tell(optuna, candidates, watch, store.results, settings.objective, higher)
            on_wave(candidates)
        finals = carry.finals or final_specs(candidates, settings, higher)
        if finals:
            train(finals, None, Control())
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        for executor in kept:
            executor.shutdown()
        outcome.wall_time_s = time.perf_counter() - t0
        try:
            status = "interrupted" if outcome.interrupted else "finished"
            store.handle(ExperimentEnded(run="", status=status, wall_time_s=outcome.wall_time_s))
            store.close()
            outcome.results = load_results(root)
            write_tune_files(root, outcome)
        except (StorageError, OSError) as exc:
            raise StorageError(f"{root}: cannot write ({exc})") from None
        finally:
            release(root)
    return outcome


def final_specs(candidates: list[Candidate], settings: TuneConfig, higher: bool) -> list[ResolvedRun]:
    """Each candidate's best completed trial over the final seeds (names in `Candidate.finals`)."""
    finals = []
    for c in candidates:
        best = c.best(higher)
        c.finals = []
        if best is None:
            continue
        trial = c.study.trials[best.number]
        for i in range(settings.final_seeds):
            seed = c.spec.seed + 1 + i  # seeds apart from the one the trials were selected on
            c.finals.append(f"{c.name}@s{seed}")
            finals.append(trial_spec(c.spec, c.space, trial.params, c.finals[-1], c.name, seed=seed))
    return finals


def _tell(optuna: Any, candidates: list[Candidate], watch: _Watch, results: dict[str, Any], objective: str,
          higher: bool) -> None:
    """Tell every trial of the wave its outcome; a trial whose run did not end (an interrupt)
    is marked interrupted and left RUNNING in the study, for `optlab resume` to continue."""
    status_of = {r["name"]: r.get("status") for r in results.get("runs") or []}
    state = optuna.trial.TrialState
    for c in candidates:
        for run, (trial, record) in c.pending.items():
            status = status_of.get(run)
            attrs = {"run": run, "status": status, "epochs": record.epochs, "steps": record.steps,
                     "wall_time_s": record.wall_time_s}
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            if run in watch.pruned and status == "stopped":
                record.status = "pruned"
                record.value = record.curve[-1] if record.curve else None
                c.study.tell(trial, state=state.PRUNED)
            elif status in COMPLETED and record.curve:
                record.status = "complete"
                record.value = max(record.curve) if higher else min(record.curve)
                c.study.tell(trial, record.value)
            elif status in ("diverged", "failed", "lost") or (status in COMPLETED and not record.curve):
                # Counted at the worst value and kept: dropping them would flatter fragile optimizers.
                record.status, record.value = "diverged" if status == "diverged" else "failed", worst(objective)
                c.study.tell(trial, record.value)
            else:
                record.status = "interrupted"
        c.pending.clear()
