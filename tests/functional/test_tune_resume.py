"""`optlab resume` on a tuning run directory: a study killed without warning (SIGKILL) and
resumed ends as the same study as one never interrupted (real Optuna on SQLite, a real
`python -m optlab tune` child), and a changed preset is refused without --force."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optlab.cli.main import app

optuna = pytest.importorskip("optuna")

TINY = """
name = "tiny"
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
[tune]
budget = 4
final_seeds = 2
parallel = 1
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""
# One torch thread everywhere: the numbers compared below must not depend on the split of sums.
ARGS = ("--device", "cpu", "--threads", "1", "-q")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _study(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name in ("sgd", "adam"):
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'study.db'}")
        out[name] = [(t.number, t.state.name, t.params, t.value, t.intermediate_values) for t in study.trials]
    return out


def _tuned(root: Path) -> dict[str, Any]:
    tune = json.loads((root / "tune.json").read_text())
    keep = ("number", "run", "params", "status", "value", "curve", "epochs", "steps")
    return {
        "ranking": {k: v for k, v in tune["ranking"].items()},
        "candidates": [{"best": c["best"], "finals": c["finals"], "expected_best": c["expected_best"],
                        "trials": [{k: t[k] for k in keep} for t in c["trials"]]} for c in tune["candidates"]],
        "final_test": {r["name"]: r["test"] for r in tune["final_results"]["runs"]},
    }


def _table(output: str) -> list[str]:
    """The ranking table's lines (the run directory's path, on the last line, differs)."""
    return [line for line in output.splitlines() if "│" in line or "┃" in line]


def test_a_killed_study_resumes_into_the_uninterrupted_study(tmp_path: Path) -> None:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    straight = CliRunner().invoke(app, ["tune", str(preset), "--out", str(tmp_path / "straight"), *ARGS],
                                  env={"COLUMNS": "200"})
    assert straight.exit_code == 0, straight.output

    root = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-m", "optlab", "tune", str(preset), "--out", str(root), *ARGS],
                             cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Killed once the second wave trains: the first wave's trials are told, the second's not.
        deadline = time.monotonic() + 180
        events = root / "events.jsonl"
        while time.monotonic() < deadline and child.poll() is None:
            if events.is_file() and '"run": "adam#1"' in events.read_text():
                break
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (root / "tune.json").exists(), "the kill came too late to test resuming"
    cut = _study(root)
    assert any(state == "RUNNING" for trials in cut.values() for _, state, *_ in trials)
    assert sum(state == "COMPLETE" for trials in cut.values() for _, state, *_ in trials) < 8

    resumed = CliRunner().invoke(app, ["resume", str(root), "--device", "cpu", "-q"], env={"COLUMNS": "200"})
    assert resumed.exit_code == 0, resumed.output
    assert _study(root) == _study(tmp_path / "straight")
    assert _tuned(root) == _tuned(tmp_path / "straight")
    assert _table(resumed.output) == _table(straight.output) != []
    assert not (root / "owner.json").exists()

    # Resumed again, nothing is left to train: the same study, no trial added.
    again = CliRunner().invoke(app, ["resume", str(root), "--device", "cpu", "-q"], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert _study(root) == _study(tmp_path / "straight")


def test_a_study_whose_preset_changed_is_refused_without_force(tmp_path: Path) -> None:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY.replace("budget = 4", "budget = 1").replace("final_seeds = 2", "final_seeds = 1"))
    root = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", str(preset), "--out", str(root), "--run", "sgd", *ARGS])
    assert result.exit_code == 0, result.output
    recorded = root / "preset.toml"
    recorded.write_text(recorded.read_text().replace("epochs = 2", "epochs = 3"))
    refused = CliRunner().invoke(app, ["resume", str(root), "--device", "cpu", "-q"])
    assert refused.exit_code == 2
    assert "cannot resume exactly" in refused.output and "sgd#0: preset differs" in refused.output
    assert "epochs" in refused.output and "--force" in refused.output
