"""`lr-find --write-preset`: a copy of a preset with each run's learning rate set to its
suggestion, checked like any preset, written next to nothing it could overwrite."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import tomli_w

from optlab.errors import PresetError
from optlab.preset.loader import load_preset_text


def preset_with_lrs(
    raw: dict[str, Any],
    optimizers: dict[str, dict[str, Any]],
    readings: dict[str, tuple[float | None, str]],
    name: str | None = None,
) -> str:
    """TOML of `raw` (a resolved preset's raw table) named `name` (NAME-lrfind), where each [[runs]]
    entry with a reading gets `optimizer` = its resolved optimizer with lr = the suggestion.
    A run without a suggestion keeps its lr, and a comment says why; so does a run the test
    did not read (a sweep's entry, which stands for several configurations)."""
    out = json.loads(json.dumps(raw))
    out["name"] = name or f"{out.get('name', 'preset')}-lrfind"
    comments: dict[str, str] = {}
    for run in out.get("runs") or []:
        name = run.get("name")
        if name not in readings:
            comments[name] = "not tested (swept or not selected); lr kept"
            continue
        suggestion, why = readings[name]
        old = optimizers[name]["lr"]
        if suggestion is None:
            comments[name] = f"confidence low ({why}); lr {old:g} kept"
            continue
        run["optimizer"] = {**optimizers[name], "lr": float(f"{suggestion:.3g}")}
        comments[name] = f"suggested lr {suggestion:.3g} (was {old:g})"
    # One comment per run at the top: tomli_w may write the runs as [[runs]] tables or as one
    # inline array, so a comment beside each run has no reliable place.
    header = ["# Learning rates from `optlab lr-find` (method and limits: docs/lr-find.md)."]
    header += [f"# lr-find: {name}: {' '.join(note.split())}" for name, note in comments.items()]
    return "\n".join(header) + "\n\n" + tomli_w.dumps(out)


def write_new_preset(path: Path, text: str, torch_checks: bool = True) -> None:
    """Validate `text` as a preset (with the checks against torch's signatures unless told
    not to), then create `path` with it in one step; an existing file is never replaced, even
    one created meanwhile."""
    if path.exists():
        raise PresetError(f"{path}: the file exists; choose a new name (it is never overwritten)")
    loaded = load_preset_text(text, str(path))
    if torch_checks:
        loaded.resolved_runs()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0o600 would hide the preset from colleagues
        try:
            os.link(tmp, path)  # fails if the name exists: no overwrite, no half-written file
        except FileExistsError:
            raise PresetError(f"{path}: the file exists; choose a new name (it is never overwritten)") from None
        except OSError:  # a file system without hard links: exclusive create instead
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(text)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
