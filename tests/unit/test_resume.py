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
from optlab.runs.store import RunStore, code_fingerprint, load_results, read_events
from optlab.training import pipelining
from optlab.training.checkpoint_policy import EVERY_EPOCH, CheckpointPolicy
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
    """Raises KeyboardInterrupt (like a Ctrl-C that lands mid-step) in the middle of epoch 3
    of one run; with `gently`, asks the driver to interrupt instead (as the first Ctrl-C of
    `optlab compare` does), so that every run stops at a safe point with its state."""

    def __init__(self, run: str, step: int, gently: bool = False) -> None:
        self.run, self.step, self.gently = run, step, gently
        self.runner: Runner | None = None

    def handle(self, event) -> None:
        if isinstance(event, Progress) and event.run == self.run and event.step >= self.step:
            if not self.gently:
                raise KeyboardInterrupt
            assert self.runner is not None
            self.runner.interrupt()


def experiment(
    root: Path, extra_sinks=(), resume: bool = False, checkpoints: CheckpointPolicy = EVERY_EPOCH
) -> dict:
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
    runner = Runner(specs, data, "cpu", [store, *extra_sinks], resume=states, finished=done, checkpoints=checkpoints)
    for sink in extra_sinks:
        if isinstance(sink, InterruptAt):
            sink.runner = runner
    try:
        runner.run()
    finally:
        store.close()
    return load_results(root)


def comparable(results: dict) -> dict:
    out = {}
    for run in results["runs"]:
        history = [{k: v for k, v in h.items() if k not in ("epoch_s",)} for h in run["history"]]
        out[run["name"]] = (run["status"], history, run["test"], run["init_fingerprint"])
    return out


@pytest.mark.parametrize(
    ("gently", "checkpoints", "resumed_from"),
    [
        (False, EVERY_EPOCH, "epoch end"),  # the last epoch end's checkpoint; epoch 3 trains again
        (True, CheckpointPolicy(seconds=1e6), "mid epoch"),  # no checkpoint due: the state it stopped in
        (False, CheckpointPolicy(seconds=1e6), "start"),  # none at all: the runs start again
    ],
)
def test_interrupted_mid_epoch_then_resumed_equals_uninterrupted(
    tmp_path: Path, gently: bool, checkpoints: CheckpointPolicy, resumed_from: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    # One reporting interval per request, so the interrupt lands where the test says (a local
    # request otherwise trains on for up to 20 ms, to its epoch's end on these tiny epochs).
    monkeypatch.setattr(pipelining, "LOCAL_BATCH_S", 0.0)
    straight = experiment(tmp_path / "straight")
    root = tmp_path / "interrupted"
    steps_per_epoch = -(-300 // 32)
    with pytest.raises(KeyboardInterrupt):
        experiment(root, [InterruptAt("sgd", 2 * steps_per_epoch + 3, gently)], checkpoints=checkpoints)
    partial = load_results(root)
    assert {r["status"] for r in partial["runs"]} == {"stopped"}
    plan = plan_resume(root, "cpu")
    assert not plan.done
    if resumed_from == "start":
        assert set(plan.fresh) == {"sgd", "adam", "plateau"}
    else:
        assert set(plan.states) == {"sgd", "adam", "plateau"}
        steps = plan.states["sgd"]["step"]
        assert (steps % steps_per_epoch == 0) == (resumed_from == "epoch end") and steps > 2 * steps_per_epoch - 1
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


def _interrupted(root: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        experiment(root, [InterruptAt("adam", 6)])


def _edit_preset(root: Path, old: str, new: str) -> None:
    text = (root / "preset.toml").read_text()
    assert old in text
    (root / "preset.toml").write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("hidden = [32]", "hidden = [48]",
         ["sgd: its model's shape changed (model.hidden: [32] -> [48]; 1.bias: [32] saved, [48] now",
          "adam: its model's shape changed", "plateau: its model's shape changed"]),
        ("hidden = [32]", "hidden = [32]\nbatchnorm = true", ["sgd: its model's shape changed (model.batchnorm: False -> True"]),
        ('scheduler = { name = "cosine" }', 'scheduler = { name = "step" }',
         ["sgd: its scheduler changed from 'cosine' to 'step'"]),
        ('{ name = "adam", lr = 1e-3 }', '{ name = "sgd", lr = 1e-3 }',
         ["adam: its optimizer changed from 'adam' to 'sgd'"]),
    ],
)
def test_force_cannot_resume_a_run_whose_checkpoint_does_not_fit(
    tmp_path: Path, old: str, new: str, fragments: list[str]
) -> None:
    root = tmp_path / "run"
    _interrupted(root)
    _edit_preset(root, old, new)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for force in (False, True):
        with pytest.raises(RunDirError) as info:
            plan_resume(root, "cpu", force=force)
        message = str(info.value)
        assert message.startswith(f"{root}: cannot resume, not even with --force:\n")
        assert "--force cannot resume a run whose model shape, optimizer or scheduler changed" in message
        assert f"optlab compare {root / 'preset.toml'} --out NEW_DIR" in message
        for fragment in fragments:
            assert fragment in message, message
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_force_still_resumes_what_does_fit(tmp_path: Path) -> None:
    root = tmp_path / "run"
    _interrupted(root)
    _edit_preset(root, "dropout = 0.3", "dropout = 0.1")  # same shapes, same optimizers
    with pytest.raises(RunDirError, match="sgd: preset differs from the checkpoint in model"):
        plan_resume(root, "cpu")
    assert set(plan_resume(root, "cpu", force=True).states) == {"sgd", "adam", "plateau"}


def test_a_checkpoint_written_before_a_new_field_differs_in_nothing_and_odd_forms_are_refused(
    tmp_path: Path,
) -> None:
    root = tmp_path / "run"
    _interrupted(root)
    path = root / "runs" / "sgd" / "checkpoint-last.pt"
    state = torch.load(path, weights_only=True)
    spec = json.loads(state["spec"])
    del spec["shuffle"]  # as written before `shuffle` existed: it had the default then
    state["spec"] = json.dumps(spec)
    torch.save(state, path)
    assert "sgd" in plan_resume(root, "cpu").states
    state["model"] = {key: 3 for key in state["model"]}  # weights of an unexpected form,
    state["code_fingerprint"] = "0123456789abcdef"  # from other code: it is tried before it is trusted
    torch.save(state, path)
    with pytest.raises(RunDirError, match="sgd: .*(malformed|does not load|shape changed)"):
        plan_resume(root, "cpu", force=True)


def test_a_checkpoint_from_other_core_code_is_refused_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "run"
    _interrupted(root)
    assert plan_resume(root, "cpu").states  # the same code: resumes as is
    path = root / "runs" / "sgd" / "checkpoint-last.pt"
    state = torch.load(path, weights_only=True)
    for recorded, said in (("0123456789abcdef", "written by code 0123456789abcdef"),
                           (None, "written before optlab recorded a code fingerprint")):
        state["code_fingerprint"] = recorded
        if recorded is None:
            del state["code_fingerprint"]
        torch.save(state, path)
        with pytest.raises(RunDirError) as info:
            plan_resume(root, "cpu")
        assert f"sgd: checkpoint {said}, this is code {code_fingerprint()}" in str(info.value)
        assert "optlab/training, data or models" in str(info.value) and "adam:" not in str(info.value)
        assert "sgd" in plan_resume(root, "cpu", force=True).states


@pytest.mark.parametrize(
    "content", [b"junk\n", b"", b"PK\x03\x04not really a zip", pickle.dumps({"model": {}, "spec": "{}"})[:-3]]
)
def test_a_damaged_checkpoint_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint-last.pt"
    path.write_bytes(content)
    with pytest.raises(RunDirError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a valid optlab checkpoint, refused to load it (")
    assert "\n" not in message and "\x1b" not in message


def test_a_checkpoint_whose_spec_is_not_a_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-last.pt"
    for state in ({"model": {}, "spec": "not json"}, {"model": {}, "spec": 3}, {"model": [], "spec": "{}"}):
        torch.save(state, path)
        with pytest.raises(RunDirError, match="not an optlab checkpoint"):
            load_checkpoint(path)


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
    with pytest.raises(RunDirError) as info:
        load_checkpoint(path)
    assert not target.exists()
    # torch's message runs on with advice (and bold terminal codes): one plain sentence is kept.
    assert str(info.value).endswith("(UnpicklingError: Weights only load failed.)")


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
