"""Which process is training into a run directory.

`DIR/owner.json` names the process that writes the directory (pid, host, start time). The run
store writes it when training starts and removes it when training ends, so a reader can tell
a live experiment from one whose process died (killed, machine rebooted): `optlab view`
follows the first and says the second has stopped, and `optlab resume` refuses to start a
second writer on a directory that is still being written.

Claiming is one atomic step: the record is written to a temporary file and hard-linked to
owner.json, which fails when owner.json exists, so of two processes that claim one directory at
the same moment exactly one wins; the other is told who trains there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from optlab.errors import RunDirError
from optlab.runs.files import atomic_write_json, file_mode

OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started_at: str
    alive: bool | None  # None: another machine's process, which this one cannot see

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started_at}"


def _record() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def claim(root: Path) -> None:
    """Make this process the directory's one writer, or raise RunDirError naming the writer it
    has. A record left by a process that died is taken over; this process's own is refreshed."""
    path = root / OWNER_FILE
    for _ in range(3):  # a stale record taken over by someone else at the same moment: look again
        if _create_exclusively(path, json.dumps(_record(), indent=2) + "\n"):
            return
        seen = _read_text(path)
        if seen is None:
            continue  # released or moved since the attempt
        owner = read_owner(root)
        if owner is not None and owner.pid == os.getpid() and owner.host == socket.gethostname():
            atomic_write_json(path, _record())
            return
        if owner is not None and owner.alive is not False:
            raise RunDirError(second_writer_message(root, owner))
        _take_over(path, seen)
    raise RunDirError(f"{root}: other processes keep claiming this run directory; choose another --out")


def second_writer_message(root: Path, owner: Owner) -> str:
    where = "still training into it" if owner.alive else "training into it from another machine"
    return (
        f"{root}: another process is {where} ({owner.describe()}); stop it first (Ctrl-C there, or "
        f"`optlab view {root}`, q, s), or, if that process is not optlab, delete {root / OWNER_FILE}"
    )


def _create_exclusively(path: Path, text: str) -> bool:
    """Write `path` whole if it does not exist, in one step that fails when it does (a hard
    link; O_EXCL where the file system has no links, at the cost of a moment's empty file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some FUSE and SMB mounts)
            try:
                with open(path, "x", encoding="utf-8") as fh:
                    fh.write(text)
            except FileExistsError:
                return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _take_over(path: Path, seen: str) -> None:
    """Move a dead writer's record aside. Whoever moved it checks that it moved the record it
    judged dead: if another process claimed the directory in between, its record goes back."""
    aside = path.with_name(f".{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        if _read_text(aside) != seen:
            try:
                os.link(aside, path)
            except FileExistsError:
                pass  # a third process claimed it meanwhile: its record stands
            except OSError:
                if not path.exists():
                    os.rename(aside, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(aside)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return ""


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
