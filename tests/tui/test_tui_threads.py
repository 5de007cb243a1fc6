"""The thread count is part of a run: the TUI's training child trains with compare's own default
(no --threads of its own), so a preset gives the same numbers from either front end, each run
records its threads, and resume goes on with the recorded count (no terminal needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from optlab.tui.process import compare_command


def _threads(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--threads"]


@pytest.mark.parametrize(
    ("backend_args", "expected"),
    [
        ((), []),
        (("--backend", "local", "--pace", "even"), []),
        (("--backend", "local", "--threads", "2"), ["2"]),  # --threads says otherwise: passed as given
        (("--backend", "processes", "--devices", "cpu,cpu"), []),
        (("--backend", "ray", "--cpus-per-run", "1"), []),
    ],
)
def test_the_child_adds_no_threads_of_its_own(backend_args: tuple[str, ...], expected: list[str]) -> None:
    cmd = compare_command("p.toml", Path("out"), "cpu", [], backend_args=backend_args)
    assert _threads(cmd) == expected


def _numbers(results_path: Path) -> dict[str, tuple[object, ...]]:
    results = json.loads(results_path.read_text())
    return {
        run["name"]: ([{k: v for k, v in h.items() if k != "epoch_s"} for h in run["history"]], run["test"])
        for run in results["runs"]
    }


def test_the_tuis_child_and_compare_give_the_same_numbers_and_record_their_threads(
    tmp_path: Path, tiny: Path
) -> None:
    overrides = ["train.epochs=2", "data.train_limit=200"]
    tui_out, compare_out = tmp_path / "tui", tmp_path / "compare"
    child = subprocess.run(compare_command(str(tiny), tui_out, "cpu", overrides), capture_output=True, text=True,
                           timeout=180)
    assert child.returncode == 0, child.stderr
    sets = [arg for item in overrides for arg in ("--set", item)]
    plain = subprocess.run([sys.executable, "-m", "optlab", "compare", str(tiny), "--out", str(compare_out), "-q",
                            "--device", "cpu", *sets], capture_output=True, text=True, timeout=180)
    assert plain.returncode == 0, plain.stderr
    assert _numbers(tui_out / "results.json") == _numbers(compare_out / "results.json")
    for run in json.loads((tui_out / "results.json").read_text())["runs"]:
        assert run["placement"]["threads"] == 1 and run["placement"]["torch"]
