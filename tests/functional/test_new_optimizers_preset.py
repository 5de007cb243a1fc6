"""`optional = true` runs and the bundled `new-optimizers` preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optlab import registry
from optlab.cli.main import app
from optlab.errors import PresetError
from optlab.preset.loader import load_preset, load_preset_text

BASE = """
name = "opt"
[data]
dataset = "digits"
train_limit = 100
[train]
epochs = 1
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""
GHOST = """
[[runs]]
name = "ghost"
optimizer = { name = "not-installed", lr = 1e-3 }
"""


def test_an_optional_run_naming_a_missing_optimizer_is_left_out_with_a_note() -> None:
    loaded = load_preset_text(BASE + GHOST + "optional = true\n", "opt.toml")
    assert [r.name for r in loaded.resolved_runs()] == ["adam"]
    assert loaded.left_out == [
        "opt.toml: run 'ghost' left out (optional): " + registry.registry().unknown_message("optimizer", "not-installed")
    ]
    # Without `optional`, the same run refuses the preset, as any unknown name does.
    with pytest.raises(PresetError, match="unknown optimizer 'not-installed'"):
        load_preset_text(BASE + GHOST, "opt.toml")
    # An optional run that can run is kept, and `optional` does not reach the run's spec.
    kept = load_preset_text(BASE + GHOST.replace("not-installed", "sgd") + "optional = true\n", "opt.toml")
    assert [r.name for r in kept.resolved_runs()] == ["adam", "ghost"] and kept.left_out == []
    assert "optional" not in kept.resolved_runs()[1].model_dump()


def test_a_preset_of_only_missing_optional_runs_is_refused() -> None:
    text = BASE.split("[[runs]]")[0] + GHOST + "optional = true\n"
    with pytest.raises(PresetError, match="every run is optional and none can run here"):
        load_preset_text(text, "opt.toml")


def test_new_optimizers_validates_with_what_is_installed() -> None:
    loaded = load_preset("new-optimizers")
    groups = {r.group for r in loaded.resolved_runs()}
    available = {"adamw", "muon"} | ({"lion", "prodigy", "schedulefree-adamw"}
                                     if registry.registry().find("optimizer", "lion") else set())
    assert groups == available
    assert {r.seed for r in loaded.resolved_runs()} == {0, 1, 2}
    assert {n.split("'")[1] for n in loaded.left_out} == {"lion", "prodigy", "schedulefree-adamw"} - groups


@pytest.mark.slow
def test_new_optimizers_runs_and_notes_what_it_leaves_out(tmp_path: Path) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "new-optimizers"\n' + GHOST + "optional = true\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "compare", str(preset), "--out", str(out), "-q",
        "--set", "train.epochs=1", "--set", "data.train_limit=200",
    ])
    assert result.exit_code == 0, result.output
    assert f"optlab: note: {preset}: run 'ghost' left out (optional): unknown optimizer 'not-installed'" in result.stderr
    runs = json.loads((out / "results.json").read_text())["runs"]
    expected = {r.name for r in load_preset("new-optimizers").resolved_runs()}
    assert {r["name"] for r in runs} == expected
    assert all(r["status"] == "finished" and r["grad_evals"] == r["progress"]["step"] for r in runs)
    prodigy = [r for r in runs if r["name"].startswith("prodigy")]
    assert all(any("multiplier" in note for note in r["notes"]) for r in prodigy)


def test_presets_validate_notes_the_runs_it_leaves_out(tmp_path: Path) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_text(BASE + GHOST + "optional = true\n")
    result = CliRunner().invoke(app, ["presets", "validate", str(preset)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {preset} (1 runs)\n"
    assert result.stderr.startswith(f"note: {preset}: run 'ghost' left out (optional): unknown optimizer 'not-installed'")


def test_a_learning_rate_sweep_of_a_multiplier_optimizer_says_it_sweeps_multipliers() -> None:
    if registry.registry().find("optimizer", "prodigy") is None:
        pytest.skip("needs optlab[optimizers]")
    text = BASE + '[[runs]]\nname = "prodigy"\noptimizer = { name = "prodigy", lr = 1.0 }\n'
    swept = load_preset_text(text + "[sweep]\noptimizer.lr = [0.5, 1.0]\n", "p.toml")
    assert swept.notes == [
        "opt: run 'prodigy': sweep over optimizer.lr: prodigy's lr is a multiplier of its own "
        "step-size estimate, so the sweep compares multipliers, not learning rates"
    ]
    assert load_preset_text(text, "p.toml").notes == []  # no sweep, nothing to say
    assert load_preset_text(BASE + "[sweep]\noptimizer.lr = [1e-3, 1e-2]\n", "p.toml").notes == []
