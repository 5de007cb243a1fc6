"""`optlab compare --fuse auto`: fused runs record their group, the rest say why not (on ray:
tests/functional/test_ray_fused.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from optlab.cli.main import app

PRESET = """
name = "fuse"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 1
batch_size = 32
seed = 1
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
[[runs]]
name = "big-batch"
batch_size = 64
optimizer = { name = "adam", lr = 1e-3 }
"""


def _started(root: Path) -> dict[str, dict]:
    lines = (root / "events.jsonl").read_text().splitlines()
    return {e["run"]: e for e in map(json.loads, lines) if e["type"] == "run_started"}


def test_compare_fuse_auto_records_groups_and_notes(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(PRESET)
    for mode in ("auto", "off"):
        out = tmp_path / mode
        result = CliRunner().invoke(app, ["compare", str(tmp_path / "p.toml"), "--out", str(out), "-q",
                                          "--fuse", mode])
        assert result.exit_code == 0, result.output
    fused, plain = _started(tmp_path / "auto"), _started(tmp_path / "off")
    assert fused["sgd"]["placement"]["fused"] == fused["adam"]["placement"]["fused"] == {"group": "fuse-1", "size": 2}
    assert "fused" not in fused["big-batch"]["placement"]
    assert any(n.startswith("not fused: no other run shares") for n in fused["big-batch"]["notes"])
    assert all("fused" not in e["placement"] and not any("fused" in n for n in e["notes"]) for e in plain.values())
    results = json.loads((tmp_path / "auto" / "results.json").read_text())
    assert sorted((r["name"], r["status"]) for r in results["runs"]) == [
        ("adam", "finished"), ("big-batch", "finished"), ("sgd", "finished")]


def test_compare_quickstart_fuse_auto_trains_its_dropout_mlp_fused(tmp_path: Path) -> None:
    # The bundled quickstart's MLP has dropout 0.2: its five runs at batch size 64 form one
    # group (each run's masks drawn from its own random state); adam-bs128 trains alone.
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["compare", "quickstart", "--out", str(out), "-q", "--fuse", "auto",
                                      "--set", "train.epochs=1", "--no-charts"])
    assert result.exit_code == 0, result.output
    started = _started(out)
    group = {"group": "fuse-1", "size": 5}
    assert {r: e["placement"].get("fused") for r, e in started.items()} == {
        "sgd": group, "sgd-momentum": group, "sgd-momentum-cosine": group, "adam": group, "adam-bs128": None,
        "rmsprop": group}
    assert started["sgd"]["spec"]["model"]["dropout"] == 0.2
    results = json.loads((out / "results.json").read_text())
    assert {r["status"] for r in results["runs"]} == {"finished"} and len(results["runs"]) == 6
