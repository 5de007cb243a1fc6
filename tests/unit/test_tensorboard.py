"""`optlab export tensorboard`: the history read back with TensorBoard's own EventAccumulator,
hyperparameters in each run's own folder, and a clear exit 2 without the optional extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optlab.runs.store import read_events
from optlab.training.events import Progress

PRESET = """name = "tb"
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
log_every = 2
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.1, momentum = 0.9 }
scheduler = { name = "exponential", gamma = 0.5 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 0.01 }
"""


def _optlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optlab", *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tb")
    (base / "tb.toml").write_text(PRESET)
    done = _optlab("compare", str(base / "tb.toml"), "--out", str(base / "run"), "-q", "-f", "json", "--no-charts")
    assert done.returncode == 0, done.stderr
    return base / "run"


def test_export_round_trips_the_history(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "tb"
    done = _optlab("export", "tensorboard", str(run_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    results = json.loads((run_dir / "results.json").read_text())
    events = read_events(run_dir).events
    assert sorted(p.name for p in out.iterdir()) == sorted(r["name"] for r in results["runs"])
    for run in results["runs"]:
        folder = out / run["name"]
        assert [p for p in folder.iterdir() if p.is_dir()] == []  # hparams in the run's own folder
        acc = EventAccumulator(str(folder))
        acc.Reload()
        progress = [e for e in events if isinstance(e, Progress) and e.run == run["name"]]
        loss = acc.Scalars("train/loss")
        assert [s.step for s in loss] == [p.step for p in progress]
        assert [s.value for s in loss] == pytest.approx([p.train_loss for p in progress], rel=1e-6)
        for key in ("val_accuracy", "val_loss", "lr"):
            values = [s.value for s in acc.Scalars(f"epoch/{key}")]
            assert values == pytest.approx([h[key] for h in run["history"]], rel=1e-6), key
        assert acc.Scalars("test/accuracy")[0].value == pytest.approx(run["test"]["accuracy"], rel=1e-6)
        content = acc.PluginTagToContent("hparams")
        assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        assert hparams["optimizer"].string_value == run["config"]["optimizer"]["name"]
        assert hparams["optimizer.lr"].number_value == pytest.approx(run["config"]["optimizer"]["lr"])
        assert hparams["batch_size"].number_value == run["config"]["batch_size"]
    # The trained-with rate: the exponential run's epochs trained at 0.1 then 0.05.
    sgd = EventAccumulator(str(out / "sgd"))
    sgd.Reload()
    assert [s.value for s in sgd.Scalars("epoch/lr")] == pytest.approx([0.1, 0.05])
    # A second export replaces the first instead of doubling every curve.
    assert _optlab("export", "tensorboard", str(run_dir), "--out", str(out)).returncode == 0
    again = EventAccumulator(str(out / "sgd"))
    again.Reload()
    assert len(again.Scalars("train/loss")) == len(sgd.Scalars("train/loss"))


def test_without_the_extra_the_export_exits_2_naming_it(run_dir: Path, tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "tensorboard"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('tensorboard is not installed (test shim)')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])}
    done = _optlab("export", "tensorboard", str(run_dir), "--out", str(tmp_path / "tb"), env=env)
    assert done.returncode == 2
    assert "optlab[tensorboard]" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "tb").exists()
