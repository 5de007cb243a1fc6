"""Shell completion (`optlab --install-completion`): preset names, run directories, `--set`
keys and the registered optimizer, model, dataset and scheduler names.

Every function here answers from files and the registries' names alone, never importing torch:
a completion runs on each TAB press and must answer at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optlab.registry import Kind

# `--set KEY=` prefixes whose values are registered names, and the registry kind they name.
NAME_KEYS: dict[str, Kind] = {
    "optimizer.name": "optimizer",
    "scheduler.name": "scheduler",
    "model.name": "model",
    "data.dataset": "dataset",
}
SET_KEYS = (
    "train.epochs=", "train.batch_size=", "train.seed=", "train.optimizer.name=", "train.optimizer.lr=",
    "train.scheduler.name=", "model.name=", "model.hidden=", "data.dataset=", "data.train_limit=",
)


def complete_preset(incomplete: str) -> list[str]:
    from optlab.preset.loader import preset_sources

    names = sorted({s.name for s in preset_sources()})
    matches = [n for n in names if n.startswith(incomplete)]
    return matches + [p for p in _paths(incomplete, "*.toml") if p not in matches]


def complete_run_dir(incomplete: str) -> list[str]:
    base = Path(incomplete).parent if incomplete else Path("runs")
    if not base.is_dir():
        return []
    dirs = [str(d) for d in sorted(base.iterdir()) if d.is_dir() and (d / "preset.toml").is_file()]
    return [d for d in dirs if d.startswith(incomplete) or not incomplete]


def complete_plugin(incomplete: str) -> list[str]:
    return _paths(incomplete, "*.py")


def complete_set(incomplete: str) -> list[str]:
    """`--set` keys, and after `...optimizer.name=` (and the like) the registered names."""
    key, eq, value = incomplete.partition("=")
    if not eq:
        return [k for k in SET_KEYS if k.startswith(incomplete)]
    kind = next((k for suffix, k in NAME_KEYS.items() if key.endswith(suffix)), None)
    if kind is None:
        return []
    from optlab import registry

    return [f"{key}={n}" for n in registry.names(kind) if n.startswith(value)]


def _paths(incomplete: str, pattern: str) -> list[str]:
    folder = Path(incomplete).parent if incomplete else Path(".")
    if not folder.is_dir():
        return []
    found = [p for p in sorted(folder.glob(pattern)) if str(p).startswith(incomplete)]
    dirs = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return [str(p) for p in found] + [f"{p}/" for p in dirs if str(p).startswith(incomplete)]
