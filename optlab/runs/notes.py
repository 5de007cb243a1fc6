"""Run notes said once per configuration: a run repeated over seeds gets the same notes at every
seed (the optimizer's "lr is a multiplier", "not fused: ..."), so listing them per run repeats
each note once per seed. `note_lines` says a note every run has once for "all runs", a note
every seed of a configuration has once for "adam (3 seeds)", and the rest per run. Pure data, so
the console, report.md and report.html say the same lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from optlab.runs.aggregate import group_of

ALL_RUNS = "all runs"


@dataclass(frozen=True)
class RunNotes:
    name: str
    group: str
    notes: tuple[str, ...]


class NoteLine(NamedTuple):
    who: str  # what the line names: "all runs", "adam (3 seeds)" or a run
    note: str
    scope: str  # what it covers: ALL_RUNS, a group, or the run's name


def run_notes(results: dict[str, Any]) -> list[RunNotes]:
    """Each run of a results document with its group and notes, in run order."""
    return [
        RunNotes(str(run.get("name", "?")), group_of(run), tuple(str(n) for n in run.get("notes") or []))
        for run in results.get("runs") or []
    ]


def group_label(group: str, n: int) -> str:
    return f"{group} ({n} seeds)"


def note_lines(runs: Sequence[RunNotes]) -> list[NoteLine]:
    """Note lines, each distinct note once per configuration: a note every run has (two
    runs or more) for "all runs" first, then per configuration in run order a note all of its
    runs have (two or more) for "GROUP (N seeds)", and a note only some runs have for the run."""
    if not runs:
        return []
    shared = [n for n in runs[0].notes if len(runs) > 1 and all(n in r.notes for r in runs)]
    out = [NoteLine(ALL_RUNS, note, ALL_RUNS) for note in shared]
    by_group: dict[str, list[RunNotes]] = {}
    for run in runs:
        by_group.setdefault(run.group, []).append(run)
    for group, members in by_group.items():
        in_all = [n for n in _distinct(members) if len(members) > 1 and all(n in r.notes for r in members)]
        out += [NoteLine(group_label(group, len(members)), n, group) for n in in_all if n not in shared]
        for run in members:
            out += [NoteLine(run.name, n, run.name) for n in dict.fromkeys(run.notes) if n not in shared and n not in in_all]
    return out


def _distinct(runs: Sequence[RunNotes]) -> list[str]:
    """Every note of these runs once, in the order they first appear."""
    return list(dict.fromkeys(n for r in runs for n in r.notes))
