"""A tuning run directory read as it grows: its trials, each candidate's best so far and the
sensitivity points, folded from events.jsonl one batch at a time (for the TUI's tuning screen).

Nothing here imports Optuna or torch: the TUI process stays small and opens fast. The study
in study.db is the record, but `--storage` may put it in a remote database and its schema is
Optuna's; the events say everything the screen needs, because a trial is an ordinary run
named `CANDIDATE#N` (its optimizer values in its `run_started` spec, its objective in each
`epoch_ended`) and the service's rules for a trial's outcome (`service._tell`) are applied
to them here the same way. tune.json, written at the end, is then taken as it is (`adopt`):
exact values, and the statuses only the service knows (`interrupted`).

Per batch, the work is proportional to the new events, never to the history: a study is
hundreds of trials.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optlab.training.events import EpochEnded, Event, ExperimentEnded, ExperimentStarted, RunEnded, RunStarted

SETTINGS_FILE = "tune-settings.json"  # service.SETTINGS_FILE (the service imports torch; this must not)
COMPLETED = ("finished", "early_stopped")  # service.COMPLETED
ADAM_BETAS = (0.9, 0.999)  # space.ADAM_BETAS: what a trial's betas start from
TRIAL_NAME = re.compile(r"^(?P<candidate>.+)#(?P<number>\d+)$")
FINAL_NAME = re.compile(r"^(?P<candidate>.+)@s\d+$")


@dataclass(frozen=True)
class TuneSettings:
    """What tune-settings.json says (written before the first trial)."""

    objective: str
    pruner: str
    budget: int
    final_seeds: int
    candidates: tuple[str, ...]

    @property
    def higher(self) -> bool:
        return self.objective == "val_accuracy"

    @property
    def worst(self) -> float:
        return 0.0 if self.higher else math.inf  # service.worst


def is_tune_dir(root: Path) -> bool:
    return (root / SETTINGS_FILE).is_file()


def read_settings(root: Path) -> TuneSettings | None:
    """None until the tuning child has written the file (it loads the data first)."""
    try:
        doc = json.loads((root / SETTINGS_FILE).read_text(encoding="utf-8"))
        s = doc["settings"]
        return TuneSettings(str(s["objective"]), str(s["pruner"]), int(s["budget"]), int(s["final_seeds"]),
                            tuple(str(c) for c in doc["candidates"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class LiveTrial:
    run: str
    candidate: str
    number: int
    params: dict[str, Any]  # the tuned values, by the optimizer's names (momentum, beta1)
    status: str = "running"  # running | complete | pruned | diverged | failed | interrupted
    value: float | None = None
    order: int = 0  # the how-manieth trial to start (the table's order)
    epochs: dict[int, float] = field(default_factory=dict)  # the objective per epoch (a resumed run repeats some)
    placement: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status != "running"


@dataclass
class LiveCandidate:
    name: str
    index: int  # its place in the study: its colour, as in the report's charts
    trials: int = 0  # asked (started) so far
    ended: int = 0
    best: LiveTrial | None = None
    # Sensitivity dots, kept sorted by x (log10 lr) so that a chart can thin them by column.
    sens_x: list[float] = field(default_factory=list)
    sens_y: list[float] = field(default_factory=list)
    best_so_far: list[float] = field(default_factory=list)  # after each ended trial, from the first scored
    states: Counter[str] = field(default_factory=Counter)  # ended trials by state


class TuneLog:
    """The trials of a tuning run directory, folded from its events."""

    def __init__(self, settings: TuneSettings) -> None:
        self.settings = settings
        self.candidates = {name: LiveCandidate(name, i) for i, name in enumerate(settings.candidates)}
        self.trials: dict[str, LiveTrial] = {}  # in the order they started
        self.finals: dict[str, str] = {}  # final seed run -> its run status ("running" until it ends)
        self.base: dict[str, dict[str, Any]] = {}  # candidate -> the preset's optimizer values
        self.running: dict[str, dict[str, Any]] = {}  # runs training now: name and placement (devices pane)
        self.wave: dict[str, dict[str, Any]] = {}  # the runs started since none was running
        self.ended = False
        self.status = ""  # the experiment's end: finished | interrupted
        self.started_time: float | None = None
        self.preset_name = ""
        self.wall_time_s = 0.0
        self.version = 0
        self.adopted = False

    # ------------------------------------------------------------ folding

    def apply(self, events: Iterable[Event]) -> set[str]:
        """Fold a batch in; the trials that changed (their run names)."""
        changed: set[str] = set()
        for event in events:
            if isinstance(event, ExperimentStarted):
                self.started_time = self.started_time or event.time or None
                self.preset_name = str((event.preset or {}).get("name") or "")
                self._base_from(event.preset)
            elif isinstance(event, ExperimentEnded):
                self.ended, self.status, self.wall_time_s = True, event.status, event.wall_time_s
                self.running.clear()
            elif isinstance(event, RunStarted):
                self.ended = False  # a resumed study appends after the end of the first session
                self._started(event, changed)
            elif isinstance(event, EpochEnded):
                trial = self.trials.get(event.run)
                value = getattr(event, self.settings.objective, None)
                if trial is not None and isinstance(value, int | float) and math.isfinite(value):
                    trial.epochs[event.epoch] = float(value)
            elif isinstance(event, RunEnded):
                self.running.pop(event.run, None)
                if event.run in self.finals:
                    self.finals[event.run] = event.status
                elif event.run in self.trials:
                    self._ended(self.trials[event.run], event.status)
                    changed.add(event.run)
        if changed:
            self.version += 1
        return changed

    def _base_from(self, preset: dict[str, Any]) -> None:
        """Each run's optimizer values as the preset sets them: a trial's value that differs was
        drawn (a value the user fixed, or left out of `search`, stays as it is)."""
        default = (preset.get("train") or {}).get("optimizer") or {}
        for run in preset.get("runs") or []:
            own = run.get("optimizer") or {}
            merged = {**default, **own} if not own or own.get("name") == default.get("name") else dict(own)
            self.base[str(run.get("name"))] = merged

    def _started(self, event: RunStarted, changed: set[str]) -> None:
        if not self.running:
            self.wave = {}
        self.running[event.run] = self.wave[event.run] = {"name": event.run, "placement": event.placement}
        if event.run in self.trials:  # continued from a checkpoint by `optlab resume`
            trial = self.trials[event.run]
            trial.placement = event.placement
            if trial.ended:
                self._unend(trial)
            changed.add(event.run)
            return
        final = FINAL_NAME.match(event.run)
        hit = TRIAL_NAME.match(event.run)
        if hit is None or hit["candidate"] not in self.candidates:
            if final is not None:
                self.finals[event.run] = "running"
            return
        name = hit["candidate"]
        optimizer = event.spec.get("optimizer") or {}
        trial = LiveTrial(event.run, name, int(hit["number"]), drawn(optimizer, self.base.get(name) or {}),
                          order=len(self.trials), placement=event.placement)
        self.trials[event.run] = trial
        self.candidates[name].trials += 1
        changed.add(event.run)
        self.version += 1

    def _ended(self, trial: LiveTrial, run_status: str) -> None:
        """`service._tell`'s rules: best epoch for a completed trial, the last one for a pruned
        one (a trial stopped while the pruner is on), the worst value for a diverged or failed
        one (kept: dropping failures flatters fragile optimizers)."""
        values = [trial.epochs[e] for e in sorted(trial.epochs)]
        s = self.settings
        if run_status == "stopped":
            if s.pruner == "off":
                trial.status, trial.value = "interrupted", None
            else:
                trial.status, trial.value = "pruned", values[-1] if values else None
        elif run_status in COMPLETED and values:
            trial.status, trial.value = "complete", max(values) if s.higher else min(values)
        else:
            trial.status = "diverged" if run_status == "diverged" else "failed"
            trial.value = s.worst
        self._count(trial)

    def _count(self, trial: LiveTrial) -> None:
        c = self.candidates[trial.candidate]
        c.ended += 1
        c.states[trial.status] += 1
        if trial.status == "complete" and trial.value is not None and self._better(trial, c.best):
            c.best = trial
        if c.best is not None and c.best.value is not None:
            c.best_so_far.append(c.best.value)
        lr = trial.params.get("lr")
        if isinstance(lr, int | float) and lr > 0 and trial.value is not None and math.isfinite(trial.value):
            at = bisect.bisect(c.sens_x, math.log10(lr))
            c.sens_x.insert(at, math.log10(lr))
            c.sens_y.insert(at, trial.value)

    def _better(self, trial: LiveTrial, than: LiveTrial | None) -> bool:
        """Candidate.best's order: the better value, then the earlier trial."""
        if than is None or than.value is None or trial.value is None:
            return True
        if trial.value != than.value:
            return trial.value > than.value if self.settings.higher else trial.value < than.value
        return trial.number < than.number

    def _unend(self, trial: LiveTrial) -> None:
        """A trial that trains again (resumed): its candidate's figures are rebuilt without it."""
        trial.status, trial.value = "running", None
        self._recount(self.candidates[trial.candidate])

    def _recount(self, c: LiveCandidate) -> None:
        c.ended, c.best, c.sens_x, c.sens_y, c.best_so_far, c.states = 0, None, [], [], [], Counter()
        for trial in self.trials.values():
            if trial.candidate == c.name and trial.ended:
                self._count(trial)

    # ------------------------------------------------------------ the end

    def adopt(self, summary: dict[str, Any]) -> set[str]:
        """tune.json, once written: every trial as the service told it."""
        changed: set[str] = set()
        for row in summary.get("candidates") or []:
            c = self.candidates.get(str(row.get("name")))
            if c is None:
                continue
            for t in row.get("trials") or []:
                trial = self.trials.get(str(t.get("run")))
                if trial is None:
                    continue
                value = t.get("value")
                if value is None and t.get("status") in ("diverged", "failed"):
                    value = self.settings.worst  # written as null when infinite (JSON has no inf)
                trial.status = str(t.get("status") or trial.status)
                trial.value = float(value) if isinstance(value, int | float) else None
                trial.params = dict(t.get("params") or trial.params)
                changed.add(trial.run)
            self._recount(c)
        self.adopted = True
        self.version += 1
        return changed

    # ------------------------------------------------------------ figures for the screen

    def counts(self) -> dict[str, int]:
        """Trials started and ended, and how many ended pruned, diverged, failed (kept per
        candidate as trials end: the status line asks four times a second)."""
        out = {"trials": len(self.trials), "ended": 0, "pruned": 0, "diverged": 0, "failed": 0}
        for c in self.candidates.values():
            out["ended"] += c.ended
            for state in ("pruned", "diverged", "failed"):
                out[state] += c.states[state]
        return out

    def placed(self) -> list[dict[str, Any]]:
        """Where trials train (the devices pane): the runs training now, or between two waves
        (a moment with small trials) the last wave's."""
        return list((self.running or self.wave).values())

    def finals_ended(self) -> int:
        return sum(status != "running" for status in self.finals.values())


def drawn(optimizer: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The trial's values that the study drew: lr (always shown: the sensitivity chart's axis)
    and every numeric optimizer value that differs from what the preset set (betas as beta1,
    beta2, as the search spaces name them)."""
    out: dict[str, Any] = {}
    if isinstance(optimizer.get("lr"), int | float):
        out["lr"] = optimizer["lr"]
    for key, value in optimizer.items():
        if key in ("name", "lr"):
            continue
        if key == "betas" and isinstance(value, list | tuple):
            was = base.get("betas") or ADAM_BETAS
            for i, beta in enumerate(value[:2]):
                if i >= len(was) or beta != was[i]:
                    out[f"beta{i + 1}"] = beta
        elif isinstance(value, int | float) and not isinstance(value, bool) and value != base.get(key):
            out[key] = value
    return out


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
