"""Whole-file writes that a crash never leaves half-done, with the mode a plain `open()` gives.

Every file in a run directory other than events.jsonl (results.json, owner.json, control.json,
preset.toml, reports, checkpoints) is written here: to a temporary file beside it, fsynced, then
renamed over it, so a reader sees the old file or the new one, never a torn one. Its own module,
below the run store and the owner record, so that both can use it without importing each other.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any


@functools.cache
def file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the umask. mkstemp creates 0o600, which
    would hide results from colleagues on a shared machine. Read once: os.umask can only be
    read by setting it, which is not safe while other threads create files."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step (creating its directory when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # not on Windows, where mkstemp's mode means nothing anyway
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, doc: Any) -> None:
    """Indented JSON; NaN is refused (JSON has none), unknown types are written as strings."""
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
