"""The LR range test of a preset's runs into a run directory: the one service behind
`optlab lr-find` and `optlab.lr_find` (which runs to test, each group's curves and reading,
lr_find.json written as groups finish and whole at the end, nothing half-made on failure)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optlab.errors import OptlabError
from optlab.runs.files import atomic_write_text
from optlab.runs.lr_find_report import (
    LR_FIND_PARTIAL,
    document,
    run_entry,
    write_lr_find,
    write_lr_find_partial,
)
from optlab.runs.owner import release

if TYPE_CHECKING:
    from optlab.data.datasets import DatasetBundle
    from optlab.preset.loader import LoadedPreset
    from optlab.spec import ResolvedRun
    from optlab.training.lr_find import RangeTestSettings


def select_groups(specs: list[ResolvedRun], wanted: list[str]) -> dict[str, list[ResolvedRun]]:
    """The runs to test, by configuration (a group's seeds are read together), in preset order."""
    groups: dict[str, list[ResolvedRun]] = {}
    for spec in specs:
        groups.setdefault(spec.group or spec.name, []).append(spec)
    if not wanted:
        return groups
    names = {s.name: g for g, members in groups.items() for s in members}
    unknown = [w for w in wanted if w not in groups and w not in names]
    if unknown:
        raise OptlabError(
            f"--run {unknown[0]!r}: no such run in the preset; runs: {', '.join(groups)}"
        )
    chosen: dict[str, list[ResolvedRun]] = {}
    for group, members in groups.items():
        if group in wanted:
            chosen[group] = members
        elif picked := [s for s in members if s.name in wanted]:
            chosen[group] = picked
    return chosen


def test_groups(
    groups: dict[str, list[ResolvedRun]],
    data: DatasetBundle,
    device: str,
    settings: RangeTestSettings,
    quiet: bool,
    on_entry: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every group's curves and combined reading, as lr_find.json's run entries; `on_entry` is
    told the entries so far after each group."""
    from optlab.training.lr_find import run_range_test
    from optlab.training.lr_suggest import combine, suggest

    entries = []
    for n, (group, members) in enumerate(groups.items(), start=1):
        readings, seeds = [], []
        for spec in members:
            if not quiet:
                sys.stderr.write(f"optlab: lr-find {spec.name} ({n}/{len(groups)})\n")
            curve = run_range_test(spec, data, device, settings)
            reading = suggest(curve.lrs, curve.losses)
            reading.notes = curve.notes + reading.notes
            readings.append(reading)
            seeds.append({**curve.to_dict(), **reading.to_dict()})
        combined = combine(readings).to_dict()
        entries.append(run_entry(group, members[0].optimizer.model_dump(mode="json"), combined, seeds))
        if on_entry is not None:
            on_entry(entries)
    return entries


test_groups.__test__ = False  # type: ignore[attr-defined]  # a service, not a pytest test


def settings_dict(settings: RangeTestSettings) -> dict[str, Any]:
    return asdict(settings)


def lr_find_into(
    root: Path,
    loaded: LoadedPreset,
    groups: dict[str, list[ResolvedRun]],
    device: str,
    settings: RangeTestSettings,
    quiet: bool,
    created: list[Path],
) -> dict[str, Any]:
    """Test `groups` into `root` (prepared and claimed by the caller; `created`: the directories
    it made) and return lr_find.json's document. On any failure what was created goes."""
    import tomli_w

    from optlab.data.datasets import load_dataset

    try:
        data = load_dataset(loaded.preset.data, device)

        def so_far(entries: list[dict[str, Any]]) -> None:
            partial = document(loaded.preset.name, device, settings_dict(settings), entries)
            write_lr_find_partial(root, partial, len(groups))

        entries = test_groups(groups, data, device, settings, quiet, so_far)
        doc = document(loaded.preset.name, device, settings_dict(settings), entries)
        atomic_write_text(root / "preset.toml", tomli_w.dumps(loaded.preset.model_dump(mode="json", exclude_none=True)))
        write_lr_find(root, doc)
        release(root)
    except BaseException:
        release(root)
        with contextlib.suppress(OSError):
            (root / LR_FIND_PARTIAL).unlink(missing_ok=True)
        for path in created:  # nothing half-made: what this command created goes
            with contextlib.suppress(OSError):
                (path / "preset.toml").unlink(missing_ok=True)
                path.rmdir()
        raise
    return doc
