"""`optlab tune` as the TUI's child (`optlab tui PRESET --tune`), with compare's child rules:
its own session, its output in `.DIRNAME.log`, its pid in `.DIRNAME.pid`, no torch threads of
its own (`--threads` passed on as given), so leaving the TUI leaves the study running.

Stopping differs from compare's: the tuning service trains each wave under its own in-memory
control, so control.json's `stop_all` would stop one wave and the next would start. A study is
stopped as Ctrl-C stops it: SIGINT, on which the driver stops the wave's runs at a safe point,
tells nothing for them (`optlab resume` continues them) and writes tune.json and the reports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from optlab import registry
from optlab.tui.process import TrainingProcess, pid_path


def tune_command(
    preset: str,
    run_dir: Path,
    device: str,
    overrides: Sequence[str] = (),
    tune_args: Sequence[str] = (),
    backend_args: Sequence[str] = (),
) -> list[str]:
    """The child's command line; `tune_args` (--budget, --sampler, ...) and `backend_args`
    are passed through as given: the child checks them before it writes anything."""
    import sys

    cmd = [sys.executable, "-m", "optlab", "tune", preset, "--out", str(run_dir), "--quiet", "--format", "json",
           "--device", device, *tune_args, *backend_args]
    for item in overrides:
        cmd += ["--set", item]
    for ref, source in registry.registry().plugins:  # as compare_command: the child knows the same plugins
        cmd += ["--plugin", source.path or ref]
    return cmd


class TuneProcess(TrainingProcess):
    def __init__(
        self,
        preset: str,
        run_dir: Path,
        device: str = "auto",
        overrides: Sequence[str] = (),
        tune_args: Sequence[str] = (),
        backend_args: Sequence[str] = (),
    ) -> None:
        super().__init__(preset, run_dir, device, overrides)
        self.command = tune_command(preset, run_dir, device, overrides, tune_args, backend_args)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (the study winds down and writes its files), then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return None
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            self.signal(sig)
            try:
                return self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        return self.proc.poll()


def interrupt_study(run_dir: Path) -> bool:
    """Stop a study this TUI did not start (`optlab view` on it): SIGINT to the process that
    trains it, as Ctrl-C in its terminal would. Its group when the TUI started it (its own
    session: the workers too), else the owner the run directory names. False when there is no
    such process on this machine."""
    from optlab.runs.owner import read_owner
    from optlab.tui.process import child_alive

    if child_alive(run_dir) is not True:  # a pid file outlives its process, whose pid may be reused
        return False
    try:
        pid = int(pid_path(run_dir).read_text().strip())
        group = True
    except (OSError, ValueError):
        owner = read_owner(run_dir)
        if owner is None or owner.alive is not True:
            return False
        pid, group = owner.pid, False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGINT)
        else:
            os.kill(pid, signal.SIGINT)
        return True
    return False
