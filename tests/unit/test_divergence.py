"""The one divergence rule: a run whose smoothed loss explodes ends `diverged`, the others go on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optlab.cli.main import app
from optlab.training.divergence import exceeds, first_non_finite

QUICK = ["--set", "train.epochs=1", "--set", "data.train_limit=300"]


def test_rule_itself() -> None:
    assert first_non_finite([1.0, 2.0, math.nan, math.inf]) == 2
    assert first_non_finite([1.0, 1e30]) is None
    assert exceeds(401.0, 4.0, 100) and not exceeds(399.0, 4.0, 100)
    assert not exceeds(1e30, 4.0, 0)  # 0 turns the rule off
    # A negative best: 4x means a rise of three times its magnitude, not "anything above it".
    assert not exceeds(-1.5, -2.0, 4) and exceeds(6.5, -2.0, 4)


def test_compare_ends_an_exploding_run_diverged_and_the_others_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTLAB_PRESETS", str(tmp_path / "none"))
    args = ["compare", "quickstart", *QUICK, "--set", "runs.sgd.optimizer.lr=50", "--out", "run", "-q", "-f", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["runs"]}
    assert runs["sgd"]["status"] == "diverged"
    assert "above 100x the first step's loss" in runs["sgd"]["reason"]
    assert "at step 4" in runs["sgd"]["reason"]
    assert {r["status"] for name, r in runs.items() if name != "sgd"} == {"finished"}


def test_factor_zero_keeps_the_old_behaviour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTLAB_PRESETS", str(tmp_path / "none"))
    args = [
        "compare", "quickstart", *QUICK, "--set", "runs.sgd.optimizer.lr=50", "--set", "train.diverge_factor=0",
        "--out", "run", "-q", "-f", "json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["runs"]}
    assert runs["sgd"]["status"] == "finished"  # stuck at chance, but never non-finite
