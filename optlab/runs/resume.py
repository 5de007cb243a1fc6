"""Resume a run directory: continue every unfinished run from its last checkpoint.

Finished, early-stopped, diverged and failed runs are results and are not re-run. Runs that
were running or stopped (interrupted) continue from `checkpoint-last.pt` (taken at each epoch
end), or start again when they had not finished an epoch.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optlab import __version__
from optlab.errors import PresetError, RunDirError
from optlab.preset.loader import LoadedPreset, load_preset
from optlab.runs.owner import read_owner, second_writer_message
from optlab.runs.results import replay
from optlab.runs.store import code_fingerprint, read_events
from optlab.spec import ResolvedRun, provenance

ENDED_FOR_GOOD = ("finished", "early_stopped", "diverged", "failed")


# Terminal colour codes: torch puts bold markers into some of its messages.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _reason(exc: BaseException) -> str:
    """One readable line for why torch could not load a file: torch's messages run to many
    lines of advice, so keep the line that names the problem (its unpickler's, when there)."""
    lines = [line.strip() for line in ANSI_ESCAPE.sub("", str(exc)).splitlines() if line.strip()]
    named = [line for line in lines if line.startswith("WeightsUnpickler error")]
    # First sentence only: what follows is advice for torch users (such as loading with
    # weights_only=False, which is exactly what must not be done with a stranger's file).
    line = re.split(r"(?<=[.!?])\s", (named or lines or [""])[0], maxsplit=1)[0]
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Checkpoints hold tensors and plain data only: `weights_only=True` refuses anything that
    would run code while unpickling, so opening someone else's run directory is safe."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about odd pickles: the refusal says enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file makes torch raise almost anything (KeyError, ...)
        raise RunDirError(f"{path}: not a valid optlab checkpoint, refused to load it ({_reason(exc)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not _is_spec(state.get("spec")):
        raise RunDirError(f"{path}: not an optlab checkpoint")
    return state


def _is_spec(text: Any) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (TypeError, ValueError):
        return False


@dataclass
class ResumePlan:
    loaded: LoadedPreset
    specs: list[ResolvedRun]
    done: list[str] = field(default_factory=list)  # ended for good: not re-run
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # resumed from a checkpoint
    fresh: list[str] = field(default_factory=list)  # no checkpoint yet: start again
    recorded_dataset: dict[str, Any] = field(default_factory=dict)  # ExperimentStarted's facts
    # Per run to resume: the numerical environment it last trained in (threads, torch version)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)

    def recorded_threads(self) -> int | None:
        """The torch threads the runs to resume trained with (the most common, if they differ),
        or None where no run recorded them (directories from before they were recorded)."""
        counts: dict[int, int] = {}
        for env in self.environments.values():
            if isinstance(env.get("threads"), int):
                counts[env["threads"]] = counts.get(env["threads"], 0) + 1
        return max(counts, key=lambda t: counts[t]) if counts else None

    def environment_notes(self, threads: int) -> list[str]:
        """One line per run whose recorded environment differs from the one it resumes in:
        its numbers will then differ from an uninterrupted run's in the last digits."""
        from optlab.training.threads import environment_changes, numerical_environment

        now = {**numerical_environment(), "threads": threads}
        notes = []
        for name, env in self.environments.items():
            changes = environment_changes(env, now)
            if changes:
                notes.append(f"{name} resumes with {', '.join(changes)}: its numbers will differ from an "
                             "uninterrupted run's in the last digits")
        return notes

    def check_data(self, facts: dict[str, Any], force: bool) -> None:
        """Refuse (unless `force`) to continue on data files that changed since the runs began:
        one changed byte of a CSV would otherwise mix two datasets in one history."""
        was = {f.get("name"): f for f in self.recorded_dataset.get("files") or []}
        now = {f.get("name"): f for f in facts.get("files") or []}
        changed = sorted(n for n in was.keys() | now.keys() if was.get(n) != now.get(n))
        if changed and not force:
            listed = ", ".join(str(n) for n in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            raise RunDirError(
                f"cannot resume exactly: the dataset's files changed since the runs started ({listed}: "
                "size or sha256 differ, or the file is new or gone). Use --force to resume anyway."
            )


def _differences(spec: ResolvedRun, saved_json: str) -> list[str]:
    saved = json.loads(saved_json)
    current = json.loads(spec.model_dump_json())
    # A field added since the checkpoint was written (e.g. `shuffle`) had its default then.
    defaults = {name: f.default for name, f in ResolvedRun.model_fields.items() if not f.is_required()}
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    return sorted(k for k in current.keys() | saved.keys() if k != "device" and current.get(k) != saved.get(k))


def _code_changes(spec: ResolvedRun, state: dict[str, Any]) -> list[str]:
    """What changed in the code behind the run's optimizer, scheduler, model and dataset since
    the checkpoint: a plugin file edited (its sha256), a plugin package of another version, a
    name now given by other code. Checkpoints from before provenance was recorded used
    built-ins only (plugins did not exist), which is what they are compared against."""
    try:
        saved = json.loads(state.get("provenance") or "{}")
    except (TypeError, ValueError):
        saved = {}
    changes = []
    for kind, now in provenance(spec).items():
        was = saved.get(kind, {"origin": "builtin"})
        if was != now:
            changes.append(f"the code of its {kind} changed since the checkpoint ({_where(was)} -> {_where(now)})")
    return changes


def _where(source: dict[str, str]) -> str:
    if source.get("origin") == "file":
        return f"{source.get('path')} sha256 {source.get('sha256', '')[:12]}"
    if source.get("origin") == "package":
        return f"{source.get('name')} {source.get('version', '')}".strip()
    return "built-in"


def _plugins_used(results: dict[str, Any]) -> str:
    """`--plugin P` for each plugin file the runs used, and the packages, as recorded: resume
    never loads code by itself, but it can say what the user gave last time."""
    files, packages = set(), set()
    for run in results.get("runs") or []:
        for source in (run.get("provenance") or {}).values():
            if source.get("origin") == "file":
                files.add(f"--plugin {source.get('path')}")
            elif source.get("origin") == "package":
                packages.add(f"{source.get('name')} {source.get('version', '')}".strip() + " installed")
    return "; ".join(sorted(files) + sorted(packages))


def _shape_changes(expected: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """`name: [16, 64] saved, [32, 64] now` for each tensor whose shape differs (or that only
    one side has), at most three of them."""
    def shape(tensors: dict[str, Any], key: str) -> str:
        size = getattr(tensors.get(key), "shape", None)
        return str(list(size)) if size is not None else "none"

    keys = sorted(k for k in expected.keys() | saved.keys() if shape(expected, k) != shape(saved, k))
    changes = [f"{k}: {shape(saved, k)} saved, {shape(expected, k)} now" for k in keys[:3]]
    return changes + ([f"{len(keys) - 3} more"] if len(keys) > 3 else [])


def _misfit(spec: ResolvedRun, state: dict[str, Any]) -> str | None:
    """Why the checkpoint cannot be loaded into the run the preset now describes, even with
    --force, or None. Tried here on CPU copies, so the refusal comes before anything is
    written (the runner would otherwise start, and fail that run)."""
    from optlab.data.catalog import describe_dataset
    from optlab.models.registry import build_model
    from optlab.training.losses import n_outputs
    from optlab.training.optim import build_optimizer
    from optlab.training.schedulers import LRSchedule

    saved_spec = json.loads(state["spec"])
    if not isinstance(state.get("model"), dict) or not all(isinstance(p, dict) for p in (
        saved_spec.get("optimizer") or {}, saved_spec.get("scheduler") or {}, saved_spec.get("model") or {}
    )):
        return "its checkpoint is malformed (model weights or spec of an unexpected form)"
    for part in ("optimizer", "scheduler"):
        was = (saved_spec.get(part) or {}).get("name")
        now = getattr(spec, part).name
        if was != now:
            return f"its {part} changed from {was!r} to {now!r}, and the saved {part} state belongs to {was!r}"
    info = describe_dataset(spec.data)
    model = build_model(spec.model, info.input_shape, n_outputs(info.task, info.n_classes, spec.loss))
    changes = _shape_changes(model.state_dict(), state["model"])
    if changes:
        was, now = saved_spec.get("model") or {}, spec.model.model_dump(mode="json")
        fields = [f"model.{k}: {was.get(k)} -> {now[k]}" for k in now if was.get(k) != now[k]]
        return f"its model's shape changed ({'; '.join(fields + changes)}), so the saved weights do not fit"
    try:
        model.load_state_dict(state["model"])
        optimizer = build_optimizer(model, spec.optimizer, "cpu")
        optimizer.load_state_dict(state["optimizer"])
        LRSchedule(optimizer, spec.scheduler, spec.epochs, 1).load_state_dict(state["schedule"])
    except Exception as exc:  # whatever torch says about a state that does not fit
        return f"its saved state does not load into it ({_reason(exc)})"
    return None


def _refuse_a_second_writer(root: Path) -> None:
    """Two processes appending to one run directory would interleave their records; --force
    does not override this (there is nothing to force: wait or stop the other one)."""
    owner = read_owner(root)
    if owner is not None and owner.alive is not False:
        raise RunDirError(second_writer_message(root, owner))


def plan_resume(root: Path, device: str, force: bool = False) -> ResumePlan:
    preset_path = root / "preset.toml"
    if not preset_path.is_file():
        raise RunDirError(f"{root}: not a run directory (no preset.toml)")
    _refuse_a_second_writer(root)
    log = read_events(root)
    results = replay(log.events)
    try:
        loaded = load_preset(str(preset_path))
    except PresetError as exc:
        hint = _plugins_used(results)
        if not hint:
            raise
        raise PresetError(f"{exc}\n{root} was trained with plugins: pass them again ({hint})") from None
    return plan_runs(root, loaded, loaded.resolved_runs(device), results, force)


def plan_runs(root: Path, loaded: LoadedPreset, specs: list[ResolvedRun], results: dict[str, Any],
              force: bool = False) -> ResumePlan:
    """The checks of a resume for `specs` (the runs the directory's record `results` knows):
    the ones that ended for good, the ones to continue from their checkpoint (the same optlab,
    code, preset and plugins, unless `force`), and the ones to start again. `optlab tune`'s
    resume gives its trials' specs here."""
    preset_path = root / "preset.toml"
    status = {run["name"]: run["status"] for run in results["runs"]}
    plan = ResumePlan(loaded, specs, recorded_dataset=results.get("dataset") or {})
    placements = {run["name"]: run.get("placement") or {} for run in results["runs"]}
    problems: list[str] = []
    misfits: list[str] = []
    for spec in specs:
        if status.get(spec.name) in ENDED_FOR_GOOD:
            plan.done.append(spec.name)
            continue
        recorded = {k: placements.get(spec.name, {}).get(k) for k in ("threads", "torch", "deterministic")}
        plan.environments[spec.name] = {k: v for k, v in recorded.items() if v is not None}
        checkpoint = root / "runs" / spec.name / "checkpoint-last.pt"
        if not checkpoint.is_file():
            plan.fresh.append(spec.name)
            continue
        state = load_checkpoint(checkpoint)
        known = len(problems)
        if state.get("optlab_version") != __version__:
            problems.append(
                f"{spec.name}: checkpoint written by optlab {state.get('optlab_version')}, this is {__version__}"
            )
        saved_code = state.get("code_fingerprint")
        if saved_code != code_fingerprint():
            written = f"by code {saved_code}" if saved_code else "before optlab recorded a code fingerprint"
            problems.append(
                f"{spec.name}: checkpoint written {written}, this is code {code_fingerprint()} "
                "(the source of optlab/training, data or models differs)"
            )
        problems += [f"{spec.name}: {change}" for change in _code_changes(spec, state)]
        changed = _differences(spec, state["spec"])
        if changed:
            problems.append(f"{spec.name}: preset differs from the checkpoint in {', '.join(changed)}")
        # An exact match loads by construction; anything else is tried before it is trusted.
        misfit = _misfit(spec, state) if len(problems) > known else None
        if misfit:
            misfits.append(f"{spec.name}: {misfit}")
        plan.states[spec.name] = state
    if misfits:
        raise RunDirError(
            f"{root}: cannot resume, not even with --force:\n  " + "\n  ".join(misfits) + "\n"
            "--force cannot resume a run whose model shape, optimizer or scheduler changed; start a "
            f"new experiment instead: optlab compare {preset_path} --out NEW_DIR"
        )
    if problems and not force:
        raise RunDirError(
            f"{root}: cannot resume exactly:\n  " + "\n  ".join(problems) + "\nUse --force to resume anyway."
        )
    return plan
