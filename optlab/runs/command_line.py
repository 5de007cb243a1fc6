"""What the command line changed in a run directory's preset: `DIR/overrides.json`, the `--set`
items and `--seeds` given to `compare` (or to the TUI, whose child is `compare`, or to the
API's `compare`), so `optlab runs` can say how a run directory differs from its named preset.

preset.toml already has them applied (it is the resolved preset `export` re-validates); this
file is a note beside it, never read back into a preset, so it cannot break an export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from optlab.runs.files import atomic_write_text

OVERRIDES_FILE = "overrides.json"


def write_overrides(root: Path, overrides: Sequence[str], seeds: int | None) -> None:
    """Record the overrides, if any: a directory made without them has no file."""
    if overrides or seeds is not None:
        doc = {"set": list(overrides), "seeds": seeds}
        atomic_write_text(root / OVERRIDES_FILE, json.dumps(doc, indent=2) + "\n")


def read_overrides(root: Path) -> list[str]:
    """The overrides as they were typed (`--set KEY=VALUE`, `--seeds N`); none for a directory
    without the file, and none for a file that is not the expected shape (a listing never fails
    on one directory's note)."""
    try:
        doc = json.loads((root / OVERRIDES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(doc, dict):
        return []
    items = doc.get("set")
    out = [f"--set {item}" for item in items if isinstance(item, str)] if isinstance(items, list) else []
    seeds = doc.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        out.append(f"--seeds {seeds}")
    return out
