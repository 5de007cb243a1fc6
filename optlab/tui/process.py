"""The training child process, controls through the run directory, and run directories on disk.

Training never runs in the TUI process: it is `optlab compare` in its own session, so a crash
in training cannot take the UI down and a dropped SSH connection leaves it running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from optlab import registry
from optlab.errors import RunDirError
from optlab.runs.control import read_control as read_control  # the one control-file format, shared
from optlab.runs.control import write_control
from optlab.runs.store import parse_event_line
from optlab.training.events import ExperimentEnded, ExperimentStarted


def log_path(run_dir: Path) -> Path:
    """Where the child's stdout and stderr go: next to the run directory, which `optlab
    compare` wants to create itself (it refuses a non-empty one)."""
    return run_dir.parent / f".{run_dir.name}.log"


def pid_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.pid"


def child_alive(run_dir: Path) -> bool | None:
    """Whether the training process for `run_dir` still runs: the child the TUI started, or
    whichever process the run directory names as its writer (a headless `optlab compare`).
    None: unknown (no record, or a process on another machine)."""
    from optlab.runs.owner import pid_alive, read_owner

    try:
        pid = int(pid_path(run_dir).read_text().strip())
    except (OSError, ValueError):
        owner = read_owner(run_dir)
        return owner.alive if owner is not None else None
    return pid_alive(pid)


def check_run_dir(path: Path) -> Path:
    """A directory `optlab view` can open: it exists and has an event log."""
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (no such directory)")
    # preset.toml comes first: a run directory whose training is still loading has no events yet.
    if not (path / "events.jsonl").is_file() and not (path / "preset.toml").is_file():
        raise RunDirError(f"{path}: not a run directory (no events.jsonl or preset.toml)")
    return path


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def compare_command(
    preset: str,
    run_dir: Path,
    device: str,
    overrides: Sequence[str],
    seeds: int | None = None,
    backend_args: Sequence[str] = (),
) -> list[str]:
    """The training child's command line; `backend_args` are the `--backend` options, passed
    through as given (the child checks them before it writes anything). Its threads are
    compare's own default unless --threads is among them: the same preset gives the same
    numbers whichever front end trains it (optlab.training.threads)."""
    cmd = [sys.executable, "-m", "optlab", "compare", preset, "--out", str(run_dir), "--quiet", *backend_args]
    cmd += ["--format", "json", "--device", device]
    for item in overrides:
        cmd += ["--set", item]
    if seeds is not None:
        cmd += ["--seeds", str(seeds)]
    # The plugins this process was given (--plugin), by absolute path for files: the child must
    # know the same names, and it gets them the only way code gets in, on its command line.
    for ref, source in registry.registry().plugins:
        cmd += ["--plugin", source.path or ref]
    return cmd


class TrainingProcess:
    """`optlab compare` as a child in its own session; stdout and stderr go to a log file."""

    def __init__(
        self,
        preset: str,
        run_dir: Path,
        device: str = "auto",
        overrides: Sequence[str] = (),
        seeds: int | None = None,
        backend_args: Sequence[str] = (),
    ) -> None:
        self.run_dir = run_dir
        self.command = compare_command(preset, run_dir, device, overrides, seeds, backend_args)
        self.log = log_path(run_dir)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop("TEXTUAL", None)  # devtools settings are ours, not the child's
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        with contextlib.suppress(OSError):
            pid_path(self.run_dir).write_text(f"{self.proc.pid}\n")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child to exit; its exit code (None if there is no child)."""
        return None if self.proc is None else self.proc.wait(timeout=timeout)

    def wait_validated(self, timeout: float = 300.0, poll_s: float = 0.05) -> int | None:
        """Wait until `optlab compare` has accepted its input, which it proves by writing
        preset.toml (after loading the preset, checking the device and preparing the run
        directory). Returns None then, or the exit code of a child that gave up first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.run_dir / "preset.toml").is_file():
                return None
            code = self.poll()
            if code is not None:
                return code
            time.sleep(poll_s)
        return None  # slow, not failed: the TUI shows it starting

    def error_lines(self) -> str:
        """What the child said about bad input (its `optlab: error:` lines, else its log tail)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        errors = [line for line in text.splitlines() if line.startswith("optlab: error:")]
        return "\n".join(errors) if errors else "\n".join(text.strip().splitlines()[-12:])

    def forget(self) -> None:
        """Remove the log and pid files of a child that never started an experiment."""
        for path in (self.log, pid_path(self.run_dir)):
            with contextlib.suppress(OSError):
                path.unlink()

    def signal(self, sig: int) -> None:
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop every run (through control.json once the run directory exists, else SIGINT),
        wait, and escalate to SIGTERM then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.running:
            if (self.run_dir / "events.jsonl").is_file():
                write_control(self.run_dir, stop_all=True, paused=False)
            else:
                self.signal(signal.SIGINT)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                self.signal(sig)
            try:
                return self.proc.wait(timeout=timeout if sig is None else 5.0)
            except subprocess.TimeoutExpired:
                continue
        return self.proc.poll()


# ---------------------------------------------------------------- a browser for report.html

# Text browsers would take over the terminal the TUI is drawing in.
CONSOLE_BROWSERS = frozenset({"www-browser", "links", "links2", "elinks", "lynx", "w3m"})


def open_in_browser(path: Path) -> bool:
    """Open a file in a graphical browser, if this machine has one (not over plain SSH, not in
    tests: OPTLAB_NO_BROWSER); True when one was started."""
    import webbrowser

    graphical = sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not graphical or os.environ.get("OPTLAB_NO_BROWSER"):
        return False
    try:
        browser = webbrowser.get()
        if getattr(browser, "name", "") in CONSOLE_BROWSERS:
            return False
        return bool(browser.open(path.resolve().as_uri()))
    except (webbrowser.Error, OSError):
        return False


# ---------------------------------------------------------------- run directories on disk


@dataclass(frozen=True)
class RunDirInfo:
    path: Path
    mtime: float
    preset: str
    status: str
    runs: int


def _events_summary(path: Path) -> tuple[str, str, int]:
    """(preset name, status, number of runs) from the first and last lines of events.jsonl,
    read with the run store's tolerant line reader (a directory list must not read whole logs)."""
    preset, status, runs = "?", "running", 0
    try:
        with open(path / "events.jsonl", "rb") as fh:
            first = parse_event_line(fh.readline())
            fh.seek(max(0, os.path.getsize(path / "events.jsonl") - 4096))
            tail = fh.read().splitlines()
    except OSError:
        return preset, "unreadable", 0
    if not isinstance(first, ExperimentStarted):
        return preset, "unreadable" if first is None else status, runs
    preset = str((first.preset or {}).get("name") or "?")
    runs = len(first.run_names or [])
    for line in reversed(tail):
        event = parse_event_line(line)
        if event is None:  # the seek may land inside a line; a crash may leave a partial one
            continue
        if isinstance(event, ExperimentEnded):
            status = str(event.status or "finished")
        break
    return preset, status, runs


def recent_run_dirs(base: Path = Path("runs"), limit: int = 12) -> list[RunDirInfo]:
    """Run directories under `base`, newest first."""
    if not base.is_dir():
        return []
    found = []
    for path in base.iterdir():
        if path.name.startswith(".") or not (path / "events.jsonl").is_file():
            continue
        with contextlib.suppress(OSError):
            found.append((os.path.getmtime(path / "events.jsonl"), path))
    found.sort(reverse=True)
    out = []
    for mtime, path in found[:limit]:
        preset, status, runs = _events_summary(path)
        if status == "running" and time.time() - mtime > 3600:
            status = "incomplete"
        out.append(RunDirInfo(path, mtime, preset, status, runs))
    return out
