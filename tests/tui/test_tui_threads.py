"""The TUI's training child leaves the UI a core on a small machine (no terminal needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from optlab.tui.process import compare_command


def _threads(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--threads"]


@pytest.mark.parametrize(
    ("backend_args", "cores", "expected"),
    [
        ((), 2, ["1"]),
        ((), 4, ["3"]),
        ((), 8, []),  # a big machine: the child's own default
        (("--backend", "local", "--pace", "even"), 3, ["2"]),
        (("--backend", "local", "--threads", "2"), 2, ["2"]),  # --threads says otherwise: kept, not doubled
        (("--backend", "processes", "--devices", "cpu,cpu"), 4, ["1"]),
        (("--backend", "processes", "--devices", "cpu"), 4, ["3"]),
        (("--backend", "processes", "--devices", "cuda:0,cuda:1"), 4, []),
        (("--backend", "processes"), 2, []),
        (("--backend", "ray", "--cpus-per-run", "1"), 2, []),
    ],
)
def test_child_threads_leave_the_ui_a_core(backend_args: tuple[str, ...], cores: int, expected: list[str]) -> None:
    cmd = compare_command("p.toml", Path("out"), "cpu", [], backend_args=backend_args, cores=cores)
    assert _threads(cmd) == expected


def test_the_built_command_trains(tmp_path: Path, tiny: Path) -> None:
    """The child accepts the threads it is given: the command as the TUI builds it runs."""
    out = tmp_path / "run"
    cmd = compare_command(str(tiny), out, "cpu", ["train.epochs=1", "data.train_limit=200"], cores=2)
    assert _threads(cmd) == ["1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert {run["status"] for run in results["runs"]} == {"finished"}
