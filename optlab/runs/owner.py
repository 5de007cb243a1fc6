"""Which process is training into a run directory.

`DIR/owner.json` names the process that writes the directory (pid, host, start time). The run
store writes it when training starts and removes it when training ends, so a reader can tell
a live experiment from one whose process died (killed, machine rebooted): `optlab view`
follows the first and says the second has stopped, and `optlab resume` refuses to start a
second writer on a directory that is still being written.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from optlab.runs.files import atomic_write_json

OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started_at: str
    alive: bool | None  # None: another machine's process, which this one cannot see

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started_at}"


def claim(root: Path) -> None:
    """Record this process as the directory's writer (atomically: a reader sees all or nothing)."""
    atomic_write_json(
        root / OWNER_FILE,
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def release(root: Path) -> None:
    """Forget the writer, if it is this process (a resumed run may have claimed it since)."""
    owner = read_owner(root)
    if owner is not None and owner.pid == os.getpid() and owner.host == socket.gethostname():
        with contextlib.suppress(OSError):
            (root / OWNER_FILE).unlink()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` (on this machine) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    """A child that ended but was not reaped yet still answers kill(0); /proc says it is done."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def read_owner(root: Path) -> Owner | None:
    """The recorded writer, or None when there is none (never started, or training ended)."""
    try:
        doc = json.loads((root / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(doc["pid"]), str(doc["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    alive = pid_alive(pid) if host == socket.gethostname() else None
    return Owner(pid, host, str(doc.get("started_at", "?")), alive)
