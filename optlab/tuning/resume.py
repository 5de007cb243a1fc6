"""Resume a tuning run directory (`optlab resume DIR` where DIR has tune-settings.json).

The study in the Optuna storage is the record of what was asked and told: finished trials are
kept as they were told; trials asked and never told (the wave that was cut, left RUNNING in
the study) are continued under their own trial numbers, each run from its last checkpoint
(or from the start when it had none), with the checks of `optlab resume` (optlab version,
code, preset, plugins: `runs/resume.py: plan_runs`); then the study goes on where it stopped
and the final seeds run (those that had ended are kept, the others continued).

The sequence of points is unchanged: qmc and grid give trial number n point n
(`study.planned_sampler`); a study from before that sampler may hold a point enqueued and not
yet asked when the process died: it is asked (the same point), not enqueued again. tpe and
random draw from their sampler's own random state, which is not stored: a resumed study's
sampler is seeded with `seed + trials so far`, so a resumed tpe/random study is reproducible
but differs from an uninterrupted one after the cut.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optlab.errors import OptlabError, RunDirError
from optlab.preset.loader import LoadedPreset, load_preset
from optlab.preset.search import TuneConfig
from optlab.runs.results import replay
from optlab.runs.resume import ResumePlan, _differences, _refuse_a_second_writer, plan_runs
from optlab.runs.store import read_events
from optlab.tuning.service import (
    COMPLETED,
    SETTINGS_FILE,
    STUDY_FILE,
    Candidate,
    Carry,
    Trial,
    candidates_for,
    final_specs,
    worst,
)
from optlab.tuning.space import natural_params, trial_spec
from optlab.tuning.study import make_pruner, make_sampler, open_storage, require_optuna


@dataclass
class TuneResume:
    loaded: LoadedPreset
    settings: TuneConfig
    storage: str
    candidates: list[Candidate]
    carry: Carry
    plan: ResumePlan  # the runs' checks: recorded threads, environment notes, data files
    threads: int | None  # --threads the study was started with (None: the default)
    fuse: str = "off"  # --fuse the study was started with (off for a study from before fused trials)


def is_tune_dir(root: Path) -> bool:
    return (root / SETTINGS_FILE).is_file()


def plan_tune_resume(root: Path, device: str, force: bool = False) -> TuneResume:
    """What continues and from where; RunDirError (one message, exit 2) when the study cannot
    be continued exactly and `force` is not given."""
    optuna = require_optuna()
    path = root / SETTINGS_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        settings = TuneConfig.model_validate(saved["settings"])
        storage, names = str(saved["storage"]), list(saved["candidates"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: not readable as optlab tune's settings ({exc})") from None
    _refuse_a_second_writer(root)
    results = replay(read_events(root).events)
    runs = {r["name"]: r for r in results["runs"]}
    loaded = load_preset(str(root / "preset.toml"))
    candidates = candidates_for(loaded, names, device)
    higher = settings.objective == "val_accuracy"
    carry, problems = Carry(), []
    for c in candidates:
        name = c.name if storage.endswith(STUDY_FILE) else f"{root.name}:{c.name}"
        try:
            c.study = optuna.load_study(study_name=name, storage=open_storage(storage), pruner=make_pruner(settings.pruner, settings.budget),
                                        sampler=make_sampler(settings.sampler, settings.seed, c.space, settings.budget))
        except Exception as exc:  # no such study, an unreachable database: SQLAlchemy's many errors
            raise RunDirError(f"{root}: cannot open the study {name!r} in {storage} ({str(exc).splitlines()[0]})") from None
        was, now = c.study.user_attrs.get("space"), [p.describe() for p in c.space.params]
        if was != now:
            problems.append(f"{c.name}: search space changed ({'; '.join(was or [])} -> {'; '.join(now)})")
        for frozen in sorted(c.study.get_trials(deepcopy=False), key=lambda t: t.number):
            if frozen.state == optuna.trial.TrialState.WAITING:
                continue  # enqueued, never asked: the next ask takes it
            record = Trial(frozen.number, f"{c.name}#{frozen.number}", natural_params(c.space, frozen.params))
            spec = trial_spec(c.spec, c.space, frozen.params, record.run, record.run)
            recorded = (runs.get(record.run) or {}).get("config")
            changed = _differences(spec, json.dumps(recorded)) if recorded else []
            if changed:
                problems.append(f"{record.run}: preset differs from the trial's run in {', '.join(changed)}")
            c.trials.append(record)
            if frozen.state == optuna.trial.TrialState.RUNNING:
                c.pending[record.run] = (optuna.trial.Trial(c.study, frozen._trial_id), record)
                carry.wave.append(spec)
            else:
                _told(record, frozen, runs.get(record.run) or {}, settings.objective)
        if settings.sampler in ("tpe", "random"):
            # Its random state was not stored: seeded anew, apart from the draws before the cut.
            c.study.sampler = make_sampler(settings.sampler, settings.seed + len(c.trials), c.space, settings.budget)
    if problems and not force:
        raise RunDirError(f"{root}: cannot resume exactly:\n  " + "\n  ".join(problems) + "\nUse --force to resume anyway.")
    if not carry.wave and all(len(c.trials) >= settings.budget for c in candidates):
        carry.finals = final_specs(candidates, settings, higher)
    plan = plan_runs(root, loaded, carry.wave + carry.finals, results, force)
    carry.states, carry.done = plan.states, plan.done
    for c in candidates:
        for run, (_, record) in c.pending.items():
            history = (runs.get(run) or {}).get("history") or []
            if run in plan.done:
                _ended(record, runs[run])
            elif run in plan.states:
                # Epochs after the checkpoint train again and report again.
                history = [h for h in history if h["epoch"] <= plan.states[run]["epoch"]]
            else:
                history = []
            record.curve = _curve(history, settings.objective)
    threads = saved.get("threads")
    fuse = saved.get("fuse") if saved.get("fuse") in ("off", "auto") else "off"
    return TuneResume(loaded, settings, storage, candidates, carry, plan, threads if isinstance(threads, int) else None,
                      fuse)


def _curve(history: list[dict[str, Any]], objective: str) -> list[float]:
    values = [h.get(objective) for h in history]
    return [float(v) for v in values if isinstance(v, int | float) and v == v]


def _ended(record: Trial, run: dict[str, Any]) -> None:
    """A trial whose run ended before the cut, never told: its budget from the run's record."""
    record.epochs = int(run.get("epochs_completed") or 0)
    record.steps = int((run.get("progress") or {}).get("step") or 0)
    record.wall_time_s = float(run.get("wall_time_s") or 0.0)


def _told(record: Trial, frozen: Any, run: dict[str, Any], objective: str) -> None:
    """A told trial as the service recorded it (`service._tell`)."""
    attrs = frozen.user_attrs
    record.epochs, record.steps = int(attrs.get("epochs") or 0), int(attrs.get("steps") or 0)
    record.wall_time_s = float(attrs.get("wall_time_s") or 0.0)
    record.curve = _curve(run.get("history") or [], objective)
    state = frozen.state.name
    if state == "PRUNED":
        record.status, record.value = "pruned", record.curve[-1] if record.curve else None
    elif state == "COMPLETE":
        status = attrs.get("status")
        if status in COMPLETED and record.curve:
            record.status, record.value = "complete", frozen.value
        else:
            record.status = "diverged" if status == "diverged" else "failed"
            record.value = worst(objective)
    else:  # told FAIL by an optlab from before resumable studies: counted, as it was then
        record.status = "interrupted"


def check_resumable(root: Path) -> None:
    """A tune directory optlab cannot continue (written before tune-settings.json existed)."""
    if (root / STUDY_FILE).is_file() and not is_tune_dir(root):
        raise OptlabError(f"{root}: a tuning run written before optlab could resume studies (no {SETTINGS_FILE})")
