"""Expand a preset's `[[runs]]` into the runs that are actually trained: each run over the grid
of its `[sweep]` values, then over its seeds.

Pure data (no torch): the loader validates and resolves what this produces. Names are
generated so that a reader can tell the runs apart at a glance (`adam-lr1e-2-bs128`), and
every seed repeat of one configuration shares a `group` so results can be aggregated.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from optlab.errors import PresetError
from optlab.preset.schema import Preset, RunConfig

# Short labels for the usual sweep axes; any other axis is labelled by its last path segment.
AXIS_LABELS = {
    "optimizer.lr": "lr",
    "batch_size": "bs",
    "epochs": "ep",
    "optimizer.weight_decay": "wd",
    "optimizer.momentum": "mom",
    "label_smoothing": "ls",
    "scheduler.name": "",
    "optimizer.name": "",
}
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")


@dataclass(frozen=True)
class Variant:
    """One run to train: its own fields (final name and seed set) and the group it belongs to."""

    run: RunConfig
    group: str


def axis_label(key: str) -> str:
    return AXIS_LABELS.get(key, key.rsplit(".", 1)[-1].replace("_", ""))


def _scientific(value: float) -> str:
    """1e-2, 3e-4, 2.5e-3: the form people write learning rates in."""
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10**exponent, 6)
    if abs(mantissa) >= 10:  # rounding carried over (9.9999999e-3)
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def format_value(value: Any, scientific: bool = False) -> str:
    """A sweep value as it appears in a generated run name (only name-safe characters)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value != 0 and math.isfinite(value) and scientific and abs(value) < 1:
        text = _scientific(value)
    elif isinstance(value, float):
        text = f"{value:g}".replace("e-0", "e-").replace("e+0", "e")
    elif isinstance(value, list | tuple):
        text = "x".join(format_value(v, scientific) for v in value)
    elif isinstance(value, dict):
        text = str(value.get("name", "table"))
    else:
        text = str(value)
    return "".join(c if c in NAME_CHARS else "_" for c in text)


def _uses_scientific(values: list[Any]) -> bool:
    # One style per axis: [1e-3, 1e-2, 1e-1] reads lr1e-3 .. lr1e-1, not lr0.001 .. lr0.1.
    return any(isinstance(v, float) and v != 0 and abs(v) < 0.1 for v in values)


def _set_path(table: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = table.get(part)
        if not isinstance(nxt, dict):
            nxt = table[part] = {}
        table = nxt
    table[path[-1]] = value


def sweep_grid(preset: Preset) -> list[list[tuple[str, Any, str]]]:
    """Every combination of the sweep: a list of (key, value, name part); [[]] without a sweep."""
    return sweep_combos(preset.sweep or {})


def sweep_combos(sweep: dict[str, list[Any]]) -> list[list[tuple[str, Any, str]]]:
    """`sweep_grid` of a sweep table as written (also the JSON copy in results.json, which is how
    `optlab.runs.sweep` tells each run's swept values back from its name)."""
    if not sweep:
        return [[]]
    axes = []
    for key, values in sweep.items():
        sci = _uses_scientific(values)
        axes.append([(key, v, axis_label(key) + format_value(v, sci)) for v in values])
    return [list(combo) for combo in itertools.product(*axes)]


def _with_sweep(run: RunConfig, combo: list[tuple[str, Any, str]], origin: str) -> RunConfig:
    if not combo:
        return run
    fields = run.model_dump(exclude_none=True, exclude_unset=True)  # what was written, not defaults
    for key, value, _ in combo:
        _set_path(fields, key.split("."), value)
    fields["name"] = "-".join([run.name, *(part for _, _, part in combo)])
    try:
        return RunConfig.model_validate(fields)
    except ValidationError as exc:
        setting = ", ".join(f"{key} = {value!r}" for key, value, _ in combo)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise PresetError(f"{origin}: sweep ({run.name}, {setting}): {problems}") from None


def seeds_of(preset: Preset, run: RunConfig) -> list[int] | None:
    """The most specific setting wins: the run's seeds, the run's seed, [train] seeds."""
    if run.seeds is not None:
        return run.seeds
    if run.seed is not None:
        return None
    return preset.train.seeds


def expand(preset: Preset, origin: str = "preset") -> list[Variant]:
    """The runs to train, in preset order: each run x sweep combination x seed."""
    grid = sweep_grid(preset)
    total = sum(len(grid) * len(seeds_of(preset, run) or [0]) for run in preset.runs)
    if total > preset.max_runs:
        parts = [f"{len(preset.runs)} run(s)"]
        if len(grid) > 1:
            parts.append(f"{len(grid)} sweep combinations")
        if any(seeds_of(preset, run) for run in preset.runs):
            parts.append("seeds")
        raise PresetError(
            f"{origin}: max_runs: the preset expands to {total} runs ({' x '.join(parts)}), more than "
            f"max_runs = {preset.max_runs}; narrow the sweep, use fewer seeds, or raise the cap "
            f"(max_runs = {total} in the preset, or --set max_runs={total})"
        )
    variants: list[Variant] = []
    for run in preset.runs:
        for combo in grid:
            swept = _with_sweep(run, combo, origin)
            seeds = seeds_of(preset, run)
            if seeds is None:
                variants.append(Variant(swept.model_copy(update={"seeds": None}), swept.name))
                continue
            for seed in seeds:
                # '@' is not allowed in a written run name, so a generated one never collides.
                name = f"{swept.name}@s{seed}" if len(seeds) > 1 else swept.name
                variants.append(Variant(swept.model_copy(update={"name": name, "seed": seed, "seeds": None}),
                                        swept.name))
    seen: set[str] = set()
    for variant in variants:
        if variant.run.name in seen:
            raise PresetError(
                f"{origin}: sweep: the generated run name {variant.run.name!r} is not unique; "
                "rename a run so that the names stay apart"
            )
        seen.add(variant.run.name)
    return variants
