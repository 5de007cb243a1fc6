"""Resume: an interrupted experiment continues from its checkpoints to exactly the results of an
uninterrupted one; checkpoints and run directories from others cannot execute code."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.errors import RunDirError
from optlab.preset.loader import load_preset
from optlab.runs.resume import load_checkpoint, plan_resume
from optlab.runs.store import RunStore, load_results, read_events
from optlab.training.events import Progress
from optlab.training.runner import Runner

PRESET = """
name = "resume-test"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [32]
dropout = 0.3
[train]
epochs = 4
batch_size = 32
seed = 3
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
scheduler = { name = "cosine" }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 64
[[runs]]
name = "plateau"
optimizer = { name = "rmsprop", lr = 1e-3 }
scheduler = { name = "plateau", patience = 1 }
"""


class InterruptAt:
    """Raises KeyboardInterrupt (like Ctrl-C) in the middle of epoch 3 of one run."""

    def __init__(self, run: str, step: int) -> None:
        self.run, self.step = run, step

    def handle(self, event) -> None:
        if isinstance(event, Progress) and event.run == self.run and event.step >= self.step:
            raise KeyboardInterrupt


def experiment(root: Path, extra_sinks=(), resume: bool = False) -> dict:
    preset_path = root.parent / f"{root.name}.toml"
    preset_path.write_text(PRESET)
    root.mkdir(exist_ok=True)
    if resume:
        plan = plan_resume(root, "cpu")
        specs, states, done = plan.specs, plan.states, plan.done
    else:
        specs, states, done = load_preset(str(preset_path)).resolved_runs(), {}, []
    store = RunStore(root, None if resume else PRESET, resume=resume)
    data = load_dataset(specs[0].data)
    try:
        Runner(specs, data, "cpu", [store, *extra_sinks], resume=states, finished=done).run()
    finally:
        store.close()
    return load_results(root)


def comparable(results: dict) -> dict:
    out = {}
    for run in results["runs"]:
        history = [{k: v for k, v in h.items() if k not in ("epoch_s",)} for h in run["history"]]
        out[run["name"]] = (run["status"], history, run["test"], run["init_fingerprint"])
    return out


def test_interrupted_mid_epoch_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    straight = experiment(tmp_path / "straight")
    root = tmp_path / "interrupted"
    steps_per_epoch = -(-300 // 32)
    with pytest.raises(KeyboardInterrupt):
        experiment(root, [InterruptAt("sgd", 2 * steps_per_epoch + 3)])
    partial = load_results(root)
    assert {r["status"] for r in partial["runs"]} == {"stopped"}
    assert (root / "runs" / "sgd" / "checkpoint-last.pt").is_file()
    plan = plan_resume(root, "cpu")
    assert set(plan.states) == {"sgd", "adam", "plateau"} and not plan.done
    resumed = experiment(root, resume=True)
    assert comparable(resumed) == comparable(straight)
    # Nothing more to do once everything has ended.
    assert set(plan_resume(root, "cpu").done) == {"sgd", "adam", "plateau"}


def test_resume_refuses_a_changed_preset_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        experiment(root, [InterruptAt("adam", 6)])
    text = (root / "preset.toml").read_text().replace("lr = 0.05", "lr = 0.07")
    (root / "preset.toml").write_text(text)
    with pytest.raises(RunDirError, match="sgd: preset differs from the checkpoint in optimizer"):
        plan_resume(root, "cpu")
    assert plan_resume(root, "cpu", force=True).states


class Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/optlab-pwned"),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the hostile file is pickled by hand
def test_checkpoints_that_would_run_code_are_refused(tmp_path: Path) -> None:
    target = Path("/tmp/optlab-pwned")
    target.unlink(missing_ok=True)
    path = tmp_path / "checkpoint-last.pt"
    buf = io.BytesIO()
    torch.save({"model": {}, "spec": "{}", "evil": Evil()}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(RunDirError, match="refused to load"):
        load_checkpoint(path)
    assert not target.exists()
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(RunDirError):
        load_checkpoint(path)
    assert not target.exists()


def test_event_log_reader_tolerates_a_truncated_last_line(tmp_path: Path) -> None:
    root = tmp_path / "run"
    experiment(root)
    log = root / "events.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines) + "\n" + lines[-1][: len(lines[-1]) // 2])
    events = read_events(root)
    assert events.valid_lines == len(lines)
    assert events.bad_lines == [len(lines) + 1]
    assert json.loads((root / "results.json").read_text())["status"] == "finished"
