"""One comparison of experiments trained at different times (`optlab report A B --out DIR`,
`optlab.combine`): their results documents merged into one, as fair as their fingerprints.

Runs of different directories are comparable when they read the same data (dataset, split and,
for the same seed, the same data fingerprint: the first epoch's order, the training tensor's
shape and the files' hashes), start from the same weights where model and seed are the same,
and train on the same budget (the preset's epochs and batch size). The first directory is the
reference; a difference from it refuses the combination (`NotComparable`, one line naming it)
unless forced, and then each directory's differences are recorded in the document's `combined`
section and shown by every report. Pure data: the source directories are only read.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optlab.errors import OptlabError
from optlab.runs.aggregate import aggregate, group_of

# The data settings that decide which samples land in which part of the split.
SPLIT_KEYS = ("dataset", "path", "val_fraction", "val_size", "test_fraction", "split_seed", "train_limit",
              "test_limit", "normalize")
DATASET_KEYS = ("name", "task", "n_classes", "input_shape", "n_train", "n_val", "n_test")
BUDGET_KEYS = ("epochs", "batch_size")


class NotComparable(OptlabError):
    """Run directories whose runs cannot be compared fairly (without --force)."""


@dataclass(frozen=True)
class SourceDoc:
    """A run directory's results document, with the path it was read from."""

    path: Path
    results: dict[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _file_hashes(dataset: dict[str, Any]) -> list[str]:
    return sorted(str(f.get("sha256", "")) for f in dataset.get("files") or [] if isinstance(f, dict))


def _runs_by(results: dict[str, Any], key: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for run in results.get("runs") or []:
        config = run.get("config") or {}
        if config:  # a run that never started has no fingerprints to compare
            out.setdefault(_dumps(key(config)), run)
    return out


def differences(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """What makes `other`'s runs unfair to compare with `reference`'s, each as a short phrase."""
    out: list[str] = []
    data_a, data_b = reference.get("dataset") or {}, other.get("dataset") or {}
    for key in DATASET_KEYS:
        if _dumps(data_a.get(key)) != _dumps(data_b.get(key)):
            label = "dataset" if key == "name" else f"dataset {key}"
            out.append(f"{label} {data_b.get(key)} vs {data_a.get(key)}")
    if _file_hashes(data_a) != _file_hashes(data_b):
        out.append("dataset files differ (sha256)")
    split_a = (reference.get("preset") or {}).get("data") or {}
    split_b = (other.get("preset") or {}).get("data") or {}
    for key in SPLIT_KEYS:
        if _dumps(split_a.get(key)) != _dumps(split_b.get(key)):
            out.append(f"data.{key} {split_b.get(key)} vs {split_a.get(key)}")
    train_a = (reference.get("preset") or {}).get("train") or {}
    train_b = (other.get("preset") or {}).get("train") or {}
    for key in BUDGET_KEYS:
        if _dumps(train_a.get(key)) != _dumps(train_b.get(key)):
            out.append(f"train.{key} {train_b.get(key)} vs {train_a.get(key)}")
    seeds_a = _runs_by(reference, lambda c: c.get("seed"))
    for key, run in _runs_by(other, lambda c: c.get("seed")).items():
        ref = seeds_a.get(key)
        if ref is not None and ref.get("data_fingerprint") != run.get("data_fingerprint"):
            out.append(f"data fingerprint of seed {key} differs (data order or training set)")
    models_a = _runs_by(reference, lambda c: [c.get("model"), c.get("seed")])
    for key, run in _runs_by(other, lambda c: [c.get("model"), c.get("seed")]).items():
        ref = models_a.get(key)
        if ref is not None and ref.get("init_fingerprint") != run.get("init_fingerprint"):
            out.append(f"initial weights of {run.get('name')} differ from {ref.get('name')}'s (same model and seed)")
    return out


def _labels(paths: Sequence[Path]) -> list[str]:
    """Each directory's prefix: its name, or as much of its path as tells it from the others."""
    labels = [p.name or str(p) for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    return [str(p) for p in paths]


def combine(sources: Sequence[SourceDoc], force: bool = False) -> dict[str, Any]:
    """The combined results document of `sources` (at least two), or NotComparable naming the
    first difference from the first directory unless `force`."""
    if len(sources) < 2:
        raise OptlabError("combining run directories needs at least two")
    reference = sources[0].results
    found = [differences(reference, s.results) if i else [] for i, s in enumerate(sources)]
    comparable = not any(found)
    if not comparable and not force:
        i = next(i for i, d in enumerate(found) if d)
        raise NotComparable(
            f"{sources[i].path}: not comparable with {sources[0].path}: {found[i][0]} (--force keeps them, marked)"
        )
    labels = _labels([s.path for s in sources])
    names: dict[str, int] = {}
    groups: dict[str, set[int]] = {}
    for i, source in enumerate(sources):
        for run in source.results.get("runs") or []:
            names[str(run.get("name"))] = names.get(str(run.get("name")), 0) + 1
            groups.setdefault(group_of(run), set()).add(i)
    runs, described = [], []
    for i, source in enumerate(sources):
        mine = []
        for original in source.results.get("runs") or []:
            run = copy.deepcopy(original)
            name = str(run.get("name"))
            if names[name] > 1:
                run["name"] = f"{labels[i]}/{name}"
            group = group_of(original)
            if len(groups[group]) > 1:
                # A configuration of two directories stays two: its seeds are not pooled.
                run["config"] = {**(run.get("config") or {}), "group": f"{labels[i]}/{group}"}
            runs.append(run)
            mine.append(run["name"])
        results = source.results
        described.append({
            "path": str(source.path), "label": labels[i], "preset": str((results.get("preset") or {}).get("name", "")),
            "started_at": results.get("started_at"), "runs": mine, "differences": found[i],
        })
    first = copy.deepcopy(reference)
    statuses = {str(s.results.get("status")) for s in sources}
    walls = [s.results.get("wall_time_s") for s in sources]
    preset = dict(first.get("preset") or {})
    preset["name"] = " + ".join(str(d["preset"] or d["label"]) for d in described)
    preset["description"] = "Combined from " + ", ".join(str(d["path"]) for d in described)
    doc = {
        **first,
        "status": "finished" if statuses == {"finished"} else "running" if "running" in statuses else "interrupted",
        "started_at": min((str(s.results.get("started_at") or "") for s in sources), default=None) or None,
        "wall_time_s": sum(w for w in walls if isinstance(w, int | float)),
        "preset": preset,
        "device": ", ".join(dict.fromkeys(str(s.results.get("device") or "?") for s in sources)),
        "runs": runs,
        "combined": {"sources": described, "comparable": comparable, "forced": not comparable},
    }
    doc["aggregates"] = aggregate(doc)
    return doc


def combined_notes(results: dict[str, Any]) -> list[str]:
    """The lines every report of a combined document shows: where its runs come from and, when
    kept with --force, what is not comparable."""
    combined = results.get("combined")
    if not isinstance(combined, dict):
        return []
    notes = []
    for source in combined.get("sources") or []:
        line = f"from {source.get('path')} ({source.get('started_at') or 'unknown date'}): {', '.join(source.get('runs') or [])}"
        if source.get("differences"):
            line += f" — NOT comparable (kept with --force): {'; '.join(source['differences'])}"
        notes.append(line)
    if combined.get("comparable", True):
        notes.append("all runs comparable: same dataset, split, data order per seed, initial weights per model and seed, budget")
    return notes
