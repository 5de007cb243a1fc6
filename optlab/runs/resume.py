"""Resume a run directory: continue every unfinished run from its last checkpoint.

Finished, early-stopped, diverged and failed runs are results and are not re-run. Runs that
were running or stopped (interrupted) continue from `checkpoint-last.pt` (taken at each epoch
end), or start again when they had not finished an epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optlab import __version__
from optlab.errors import RunDirError
from optlab.preset.loader import LoadedPreset, load_preset
from optlab.preset.schema import ResolvedRun
from optlab.runs.results import replay
from optlab.runs.store import read_events

ENDED_FOR_GOOD = ("finished", "early_stopped", "diverged", "failed")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Checkpoints hold tensors and plain data only: `weights_only=True` refuses anything that
    would run code while unpickling, so opening someone else's run directory is safe."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"{path}: not a valid optlab checkpoint, refused to load it ({first})") from None
    if not isinstance(state, dict) or "model" not in state or "spec" not in state:
        raise RunDirError(f"{path}: not an optlab checkpoint")
    return state


@dataclass
class ResumePlan:
    loaded: LoadedPreset
    specs: list[ResolvedRun]
    done: list[str] = field(default_factory=list)  # ended for good: not re-run
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # resumed from a checkpoint
    fresh: list[str] = field(default_factory=list)  # no checkpoint yet: start again


def _differences(spec: ResolvedRun, saved_json: str) -> list[str]:
    saved = json.loads(saved_json)
    current = json.loads(spec.model_dump_json())
    return sorted(k for k in current.keys() | saved.keys() if k != "device" and current.get(k) != saved.get(k))


def _refuse_a_second_writer(root: Path) -> None:
    """Two processes appending to one run directory would interleave their records; --force
    does not override this (there is nothing to force: wait or stop the other one)."""
    from optlab.runs.owner import OWNER_FILE, read_owner

    owner = read_owner(root)
    if owner is None or owner.alive is False:
        return
    where = "still training into it" if owner.alive else "training into it from another machine"
    raise RunDirError(
        f"{root}: a process is {where} ({owner.describe()}); stop it first (Ctrl-C there, or "
        f"`optlab view {root}`, q, s), or, if that process is not optlab, delete {root / OWNER_FILE}"
    )


def plan_resume(root: Path, device: str, force: bool = False) -> ResumePlan:
    preset_path = root / "preset.toml"
    if not preset_path.is_file():
        raise RunDirError(f"{root}: not a run directory (no preset.toml)")
    _refuse_a_second_writer(root)
    log = read_events(root)
    results = replay(log.events)
    status = {run["name"]: run["status"] for run in results["runs"]}
    loaded = load_preset(str(preset_path))
    specs = loaded.resolved_runs(device)
    plan = ResumePlan(loaded, specs)
    problems: list[str] = []
    for spec in specs:
        if status.get(spec.name) in ENDED_FOR_GOOD:
            plan.done.append(spec.name)
            continue
        checkpoint = root / "runs" / spec.name / "checkpoint-last.pt"
        if not checkpoint.is_file():
            plan.fresh.append(spec.name)
            continue
        state = load_checkpoint(checkpoint)
        if state.get("optlab_version") != __version__:
            problems.append(
                f"{spec.name}: checkpoint written by optlab {state.get('optlab_version')}, this is {__version__}"
            )
        changed = _differences(spec, state["spec"])
        if changed:
            problems.append(f"{spec.name}: preset differs from the checkpoint in {', '.join(changed)}")
        plan.states[spec.name] = state
    if problems and not force:
        raise RunDirError(
            f"{root}: cannot resume exactly:\n  " + "\n  ".join(problems) + "\nUse --force to resume anyway."
        )
    return plan
