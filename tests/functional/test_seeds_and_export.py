"""Repeated seeds keep fairness per seed; `presets export` then `compare` reproduces a run
directory's histories; `presets new` writes a preset to start from and never overwrites."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optlab import __version__
from optlab.cli.main import app
from optlab.preset.loader import load_preset, load_preset_text

TINY = """
name = "tiny"
description = "Two optimizers, tiny."
[data]
dataset = "digits"
train_limit = 240
[model]
hidden = [16]
dropout = 0.1
[train]
epochs = 2
batch_size = 32
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""


def invoke(*args: str, **kwargs: Any) -> Any:
    return CliRunner().invoke(app, list(args), **kwargs)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")


def test_fairness_holds_per_seed() -> None:
    from optlab.experiment import prepare
    from optlab.training.trainer import Trainer

    text = TINY.replace("batch_size = 32", "batch_size = 32\nseeds = [0, 1, 2]") + """
[[runs]]
name = "adam-bs64"
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 64
[[runs]]
name = "wide"
model = { hidden = [24] }
"""
    specs, data, device = prepare(load_preset_text(text), "cpu")
    assert len(specs) == 12
    prints: dict[int, dict[str, tuple[str, str]]] = {}
    for spec in specs:
        trainer = Trainer(spec, data, device)
        assert spec.name == f"{spec.group}@s{spec.seed}" and trainer.started_event().spec["group"] == spec.group
        prints.setdefault(spec.seed, {})[spec.group] = (trainer.init_fingerprint, trainer.data_fingerprint)
    for seed, by_group in prints.items():
        same_model = {by_group[g][0] for g in ("sgd", "adam", "adam-bs64")}
        assert len(same_model) == 1, seed  # same weights for every run with this model and seed
        assert by_group["wide"][0] not in same_model  # another model starts elsewhere
        assert len({d for _, d in by_group.values()}) == 1, seed  # same data order, whatever the batch size
    for i in (0, 1):  # init and data order differ across seeds
        assert len({prints[s]["sgd"][i] for s in prints}) == 3


def histories(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each run's history without the timings (the only thing allowed to differ)."""
    results = json.loads((run_dir / "results.json").read_text())
    return {
        r["name"]: [{k: v for k, v in h.items() if k not in ("epoch_s", "elapsed_s")} for h in r["history"]]
        for r in results["runs"]
    }


def test_export_then_rerun_reproduces_the_same_histories(tmp_path: Path) -> None:
    Path("tiny.toml").write_text(TINY)
    first = invoke("compare", "tiny.toml", "--seeds", "2", "--set", "runs.adam.optimizer.lr=0.002",
                   "--out", "first", "-q", "-f", "csv")
    assert first.exit_code == 0, first.output
    assert [line.split(",")[0] for line in first.output.splitlines()[1:5]] == [
        "sgd@s0", "sgd@s1", "adam@s0", "adam@s1"
    ]

    exported = invoke("presets", "export", "first", "-o", "exported.toml")
    assert exported.exit_code == 0, exported.output
    text = Path("exported.toml").read_text()
    assert f"optlab {__version__} and torch " in text and "seed(s) 0, 1" in text
    raw = tomllib.loads(text)
    assert raw["train"]["seeds"] == [0, 1] and raw["runs"][1]["optimizer"]["lr"] == 0.002  # --set kept

    again = invoke("compare", "exported.toml", "--out", "second", "-q", "-f", "json")
    assert again.exit_code == 0, again.output
    first_h, second_h = histories(Path("first")), histories(Path("second"))
    assert list(first_h) == ["sgd@s0", "sgd@s1", "adam@s0", "adam@s1"]
    assert first_h == second_h
    assert first_h["sgd@s0"] != first_h["sgd@s1"]  # seeds differ
    results = json.loads((Path("second") / "results.json").read_text())
    assert results["aggregates"]["groups"][0]["group"] == "sgd"

    # `optlab runs` says what --set and --seeds changed (overrides.json, beside preset.toml, which
    # the export above re-validated as it stands); a directory made without them says "-".
    assert json.loads(Path("first/overrides.json").read_text()) == {
        "set": ["runs.adam.optimizer.lr=0.002"], "seeds": 2}
    assert not Path("second/overrides.json").exists()
    listed = invoke("runs", "--dir", ".")
    assert listed.exit_code == 0, listed.output
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("│").split("│")]
                                          for line in listed.stdout.splitlines() if line.startswith("│"))}
    assert rows["first"][-1] == "--set runs.adam.optimizer.lr=0.002 --seeds 2"
    assert rows["second"][-1] == "-"

    # Printing to stdout works too; an existing file is never overwritten.
    assert invoke("presets", "export", "first").output.startswith("# Exported by")
    refused = invoke("presets", "export", "first", "-o", "exported.toml")
    assert refused.exit_code == 2 and "refusing to overwrite" in refused.output
    missing = invoke("presets", "export", "nothere")
    assert missing.exit_code == 2 and "not a run directory" in missing.output


def test_presets_new_from_a_template_and_from_a_preset() -> None:
    made = invoke("presets", "new", "mine")
    assert made.exit_code == 0, made.output
    loaded = load_preset("mine")  # found by name in ./presets
    assert loaded.path == Path("presets") / "mine.toml" and loaded.preset.name == "mine"
    assert [r.name for r in loaded.resolved_runs()] == ["sgd-momentum", "adam"]

    again = invoke("presets", "new", "mine")
    assert again.exit_code == 2 and "refusing to overwrite" in again.output

    Path("tiny.toml").write_text(TINY)
    Path("child.toml").write_text('extends = "tiny.toml"\n[train]\nepochs = 3\n')
    from_child = invoke("presets", "new", "copy", "--from", "child.toml", "-o", "elsewhere/copy.toml")
    assert from_child.exit_code == 0, from_child.output
    copy = load_preset("elsewhere/copy.toml")
    assert "extends" not in Path("elsewhere/copy.toml").read_text()  # stands alone
    assert copy.preset.name == "copy" and copy.preset.train.epochs == 3
    original = load_preset("child.toml").resolved_runs()
    assert [r.model_dump() for r in copy.resolved_runs()] == [r.model_dump() for r in original]

    bad = invoke("presets", "new", "../oops")
    assert bad.exit_code == 2 and "may hold only letters, digits" in bad.output


def test_compare_ranks_configurations_shows_time_to_target_and_says_the_cpu_amp_note_once() -> None:
    text = TINY.replace('description = "Two optimizers, tiny."',
                        'description = "Two optimizers, tiny."\ntarget = { metric = "val_accuracy", value = 0.3 }')
    text += '[[runs]]\nname = "slow"\noptimizer = { name = "sgd", lr = 1e-4 }\n'
    Path("tiny.toml").write_text(text)
    result = invoke("compare", "tiny.toml", "--seeds", "2", "--set", "train.amp=bf16", "--out", "out")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: all runs: amp = 'bf16' is off: mixed precision needs CUDA, this run is on CPU"]

    results = json.loads(Path("out/results.json").read_text())
    ranks = results["aggregates"]["ranking"]["ranks"]
    assert [r["group"] for r in ranks] == results["aggregates"]["ranking"]["order"]
    assert ranks[-1]["group"] == "slow"  # lr 1e-4 for two epochs learns next to nothing
    seeds_part = result.stdout.split("across seeds")[1]
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in seeds_part.splitlines()
            if line.startswith("│")]
    assert [(row[0], row[1]) for row in rows] == [(r["label"], r["group"]) for r in ranks]
    header = next(line for line in seeds_part.splitlines() if "configuration" in line)
    assert header.split("┃")[1].strip() == "rank" and "reached target" in header and "target time" in header
    groups = {g["group"]: g for g in results["aggregates"]["groups"]}
    for row in rows:
        ttt = groups[row[1]]["time_to_target"]
        assert row[-4] == f"{ttt['reached']} of {ttt['of']}"

    report = Path("out/report.md").read_text().split("## Across seeds")[1]
    assert "| rank | configuration |" in report and "| reached target | target epoch | target samples |" in report
    md_rows = [line.split(" | ")[:2] for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert md_rows[1:] == [[f"| {r['label']}", r["group"]] for r in ranks]
