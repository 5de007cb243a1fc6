"""Controls that travel through the run directory: a front end in another process (the TUI,
a reattached `optlab view`) writes control.json; the runner polls it between chunks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from optlab.runs.files import atomic_write_json
from optlab.training.control import Control

CONTROL_FILE = "control.json"
POLL_EVERY_S = 0.1


def read_control(root: Path) -> dict[str, Any]:
    try:
        doc = json.loads((root / CONTROL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_control(
    root: Path, paused: bool | None = None, stop: str | None = None, stop_all: bool | None = None
) -> None:
    """Read-modify-write control.json atomically (one writer at a time: the front end)."""
    doc = read_control(root)
    if paused is not None:
        doc["paused"] = paused
    if stop is not None:
        doc["stop"] = sorted(set(doc.get("stop", [])) | {stop})
    if stop_all is not None:
        doc["stop_all"] = stop_all
    atomic_write_json(root / CONTROL_FILE, doc)


class FileControl(Control):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.path = root / CONTROL_FILE
        self._mtime: int | None = None
        self._next_poll = 0.0

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + POLL_EVERY_S
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        doc = read_control(self.path.parent)
        if doc.get("paused"):
            self.pause()
        else:
            self.resume()
        for run in doc.get("stop", []):
            self.stop(str(run))
        if doc.get("stop_all"):
            self.stop()
