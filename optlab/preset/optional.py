"""What the loader tells the front ends before training: `optional = true` runs left out,
with a note, where what they name is not available; sweeps of multiplier learning rates.

A preset is static data, so one that compares against optimizers of an optional extra (say
`optlab[optimizers]`) would otherwise be refused wherever the extra is missing. Such runs are
dropped from the raw tables before validation (which would refuse the unknown name), and
each one left out gets a sentence for the front end to show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optlab.errors import PresetError

if TYPE_CHECKING:
    from optlab.preset.schema import Preset
    from optlab.registry import Kind


def _unavailable(raw: dict[str, Any], run: dict[str, Any]) -> str | None:
    """What an optional run names that is not available here, or None. Read from the raw
    tables (before validation, which would refuse the unknown name), with the resolution
    rules of `train_fields`: the run's own optimizer or model name, else the preset's."""
    from optlab import registry
    from optlab.training.optim import OptimizerUnavailable, factory

    def name_in(table: Any, key: str) -> Any:
        return table.get(key) if isinstance(table, dict) else None

    train = raw.get("train")
    wanted: tuple[tuple[Kind, object], ...] = (
        ("optimizer", name_in(run.get("optimizer"), "name") or name_in(name_in(train, "optimizer"), "name") or "sgd"),
        ("model", name_in(run.get("model"), "name") or name_in(raw.get("model"), "name") or "mlp"),
        ("dataset", name_in(raw.get("data"), "dataset") or "digits"),
    )
    for kind, name in wanted:
        if not isinstance(name, str):
            return None  # not a name at all: validation says what is wrong with it
        if registry.registry().find(kind, name) is None:
            return registry.registry().unknown_message(kind, name)
        if kind == "optimizer":
            try:
                factory(name)
            except OptimizerUnavailable as exc:
                return str(exc)
    return None


def drop_unavailable_runs(raw: dict[str, Any], origin: str) -> tuple[dict[str, Any], list[str]]:
    """`raw` without its `optional = true` runs whose optimizer, model or dataset is not
    available here, and a note for each one left out."""
    runs = raw.get("runs")
    if not isinstance(runs, list):
        return raw, []
    kept, notes = [], []
    for run in runs:
        why = _unavailable(raw, run) if isinstance(run, dict) and run.get("optional") is True else None
        if why is None:
            kept.append(run)
        else:
            notes.append(f"{origin}: run {run.get('name')!r} left out (optional): {why}")
    if runs and not kept:
        raise PresetError(f"{origin}: runs: every run is optional and none can run here:\n  " + "\n  ".join(notes))
    return ({**raw, "runs": kept} if notes else raw), notes


def multiplier_sweep_notes(preset: Preset, origin: str) -> list[str]:
    """A sweep over `optimizer.lr` of a run whose optimizer treats lr as a multiplier of its
    own estimate compares multipliers, not learning rates: say so (the sweep still runs)."""
    from optlab import registry

    keys = [k for k in preset.sweep or {} if k.endswith("optimizer.lr")]
    notes = []
    for run in preset.runs if keys else []:
        # train_fields' rule: the run's own optimizer name if it wrote one, else [train]'s.
        own = run.optimizer.name if run.optimizer and "name" in run.optimizer.model_fields_set else None
        name = own or (preset.train.optimizer.name if preset.train.optimizer else "sgd")
        entry = registry.registry().find("optimizer", name)
        if entry is not None and entry.has("lr_is_multiplier"):
            notes.append(
                f"{origin}: run {run.name!r}: sweep over {keys[0]}: {name}'s lr is a multiplier of its "
                "own step-size estimate, so the sweep compares multipliers, not learning rates"
            )
    return notes
