"""Presets and run directories are data someone else may have sent: loading, listing,
reporting or resuming them must never import a named object or run code."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from optlab.cli.main import app
from optlab.errors import PresetError
from optlab.preset.loader import load_preset_text

BASE = """
name = "hostile"
[data]
dataset = "digits"
[model]
name = "mlp"
[train]
epochs = 1
loss = "cross_entropy"
[[runs]]
name = "a"
optimizer = { name = "sgd", lr = 0.1 }
"""

# Every field that picks an implementation by name, given something that would pick code.
HOSTILE = [
    ('name = "mlp"', 'name = "torch.nn.Linear"', "unknown model"),
    ('name = "mlp"', 'name = "os.system"', "unknown model"),
    ('name = "sgd"', 'name = "torch.optim.SGD"', "unknown optimizer"),
    ('name = "sgd"', 'name = "builtins.eval"', "unknown optimizer"),
    ('loss = "cross_entropy"', 'loss = "torch.nn.functional.cross_entropy"', "unknown loss"),
    ('dataset = "digits"', 'dataset = "sklearn.datasets.load_digits"', "unknown dataset"),
    ('lr = 0.1 }', 'lr = 0.1 }\nscheduler = { name = "torch.optim.lr_scheduler.LambdaLR" }', "unknown scheduler"),
    ('lr = 0.1 }', 'lr = 0.1, lr_lambda = "lambda e: __import__(\'os\')" }', "unknown argument 'lr_lambda'"),
]


class Marker:
    """Unpickling this would create a file: the proof that code ran."""

    path = Path("/tmp/optlab-safety-marker")

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize(("old", "new", "fragment"), HOSTILE)
def test_preset_names_only_pick_from_closed_registries(old: str, new: str, fragment: str) -> None:
    assert old in BASE
    with pytest.raises(PresetError) as info:
        load_preset_text(BASE.replace(old, new, 1))
    assert fragment in str(info.value)


def test_a_received_run_directory_cannot_run_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Marker.path.unlink(missing_ok=True)
    runs = tmp_path / "runs"
    root = runs / "received"
    result = CliRunner().invoke(
        app, ["compare", "quickstart", "--out", str(root), "--quiet", "--set", "train.epochs=1",
              "--set", "data.train_limit=200"]
    )
    assert result.exit_code == 0, result.output
    # Someone replaces a checkpoint with a pickle that runs a command when loaded, and marks
    # the runs unfinished so that resume would want to load it.
    for checkpoint in root.glob("runs/*/checkpoint-*.pt"):
        buf = io.BytesIO()
        torch.save({"model": {}, "spec": "{}", "payload": Marker()}, buf)
        checkpoint.write_bytes(buf.getvalue())
    events = root / "events.jsonl"
    events.write_text(
        "\n".join(line for line in events.read_text().splitlines() if '"run_ended"' not in line) + "\n"
    )
    shutil.copytree(root, runs / "copy")

    for args in (["report", str(root)], ["runs", "--dir", str(runs)], ["resume", str(root)]):
        outcome = CliRunner().invoke(app, args)
        assert "Traceback" not in outcome.output
        assert not Marker.path.exists(), f"`optlab {' '.join(args)}` ran code from the run directory"
    refused = CliRunner().invoke(app, ["resume", str(runs / "copy"), "--force"])
    assert refused.exit_code == 2
    assert "refused to load" in refused.output
    assert not Marker.path.exists()


FOREIGN_RESULTS = [
    ("[1, 2, 3]", "expected a JSON object, found list"),
    ('{"x": 1}', "no results_version"),
    ('"results"', "expected a JSON object, found str"),
    ('{"results_version": 1, "runs": {"a": 1}, "preset": {}, "dataset": {}}', "'runs' is missing or not a list"),
    ('{"results_version": 1, "runs": [3], "preset": {}, "dataset": {}}', "runs[0] is not a run with a name"),
    # The right outline, foreign contents: found while rendering, before anything is written.
    ('{"results_version": 1, "runs": [{"name": "a", "status": "finished", "history": [1]}], "preset": {},'
     ' "dataset": {}}', "not a results document optlab can report"),
    ('{"results_version": 1, "runs": [{"name": "a", "status": "finished", "progress": [3]}], "preset": {},'
     ' "dataset": {"task": "multiclass"}}', "not a results document optlab can report"),
]


@pytest.mark.parametrize(("text", "fragment"), FOREIGN_RESULTS)
def test_report_refuses_a_results_json_it_did_not_write_and_leaves_it_alone(
    tmp_path: Path, text: str, fragment: str
) -> None:
    (tmp_path / "results.json").write_text(text)
    for args in (["report", str(tmp_path)], ["report", str(tmp_path), "--format", "json"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(tmp_path / "results.json") in lines[0] and fragment in lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert (tmp_path / "results.json").read_text() == text


def test_report_of_events_that_are_not_optlabs_is_not_a_run_directory(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"x": 1}\nnot json\n')
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.stderr and "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]


# Values that validate as numbers but cannot be held where they end up: float32 tensors,
# torch's 64-bit generators, a folder name.
UNREPRESENTABLE = [
    ('lr = 0.1 }', 'lr = 1e39 }', "lr = 1e+39 cannot be held by a float32 tensor"),
    ('lr = 0.1 }', 'lr = inf }', "lr = inf cannot be held by a float32 tensor"),
    ('lr = 0.1 }', 'lr = 0.1, momentum = -1e300 }', "momentum = -1e+300 cannot be held by a float32 tensor"),
    ('epochs = 1', 'epochs = 1\nclip_grad_norm = 1e40', "clip_grad_norm = 1e+40 cannot be held"),
    ('epochs = 1', 'epochs = 1\nseed = 18446744073709551616', "seed: Input should be less than or equal to 4294967295"),
    ('epochs = 1', 'epochs = 1\nseeds = [0, 4294967296]', "less than or equal to 4294967295"),
    ('dataset = "digits"', 'dataset = "digits"\nsplit_seed = -1', "split_seed: Input should be greater than or equal to 0"),
    ('name = "a"', f'name = "{"a" * 101}"', "run name of 101 characters: at most 100"),
]


@pytest.mark.parametrize(("old", "new", "fragment"), UNREPRESENTABLE)
def test_values_that_cannot_be_held_where_they_end_up_are_refused(old: str, new: str, fragment: str) -> None:
    assert old in BASE
    with pytest.raises(PresetError) as info:
        load_preset_text(BASE.replace(old, new, 1))
    assert fragment in str(info.value)
