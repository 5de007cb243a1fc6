"""When checkpoints are taken: the policy's forms, what a run directory holds under it (the
last state at the run's end, the best epoch's state however few checkpoints were due), and
the driver's own cost of results.json, which must not grow with the epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.errors import OptlabError
from optlab.preset.loader import load_preset_text
from optlab.runs import store as store_module
from optlab.runs.store import RunStore, prepare_run_dir
from optlab.training.checkpoint_policy import EVERY_EPOCH, CheckpointPolicy, parse_checkpoint_every
from optlab.training.events import EpochEnded
from optlab.training.runner import Runner
from optlab.training.trainer import Trainer

PRESET = """
name = "ckpt"
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 6
batch_size = 50
seed = 1
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 0.01 }
"""


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("10s", CheckpointPolicy(seconds=10.0, epochs=None)),
        ("2m", CheckpointPolicy(seconds=120.0, epochs=None)),
        ("0.5s", CheckpointPolicy(seconds=0.5, epochs=None)),
        ("1", EVERY_EPOCH),
        ("5epochs", CheckpointPolicy(seconds=None, epochs=5)),
        (" 3 epoch ", CheckpointPolicy(seconds=None, epochs=3)),
    ],
)
def test_the_forms_of_checkpoint_every(text: str, policy: CheckpointPolicy) -> None:
    assert parse_checkpoint_every(text) == policy


@pytest.mark.parametrize("text", ["0", "0s", "-1", "1.5", "ten", "5h", "", "nan", "1e99"])
def test_a_bad_checkpoint_every_names_the_value_and_the_forms(text: str) -> None:
    with pytest.raises(OptlabError, match="--checkpoint-every") as caught:
        parse_checkpoint_every(text)
    assert repr(text) in str(caught.value) and "'10s'" in str(caught.value)


class CountingStore(RunStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root, PRESET)
        self.last: list[int] = []  # the epoch of each checkpoint-last.pt written
        self.best: list[int] = []  # ... of each checkpoint-best.pt
        self.epochs: list[EpochEnded] = []

    def handle(self, event) -> None:
        if isinstance(event, EpochEnded):
            self.epochs.append(event)
        super().handle(event)

    def checkpoint(self, run, state, best) -> None:
        self.last.append(state["epoch"])
        if best:
            self.best.append(state["epoch"])
        super().checkpoint(run, state, best)

    def best_checkpoint(self, run, state) -> None:
        self.best.append(state["epoch"])
        super().best_checkpoint(run, state)


def _train(root: Path, policy: CheckpointPolicy) -> CountingStore:
    torch.set_num_threads(1)
    loaded = load_preset_text(PRESET)
    specs = loaded.resolved_runs()
    store = CountingStore(prepare_run_dir(root))
    Runner(specs, load_dataset(loaded.preset.data), "cpu", [store], checkpoints=policy).run()
    store.close()
    return store


def test_a_long_interval_checkpoints_at_the_end_and_keeps_the_best_epochs_state(tmp_path: Path) -> None:
    every = _train(tmp_path / "every", EVERY_EPOCH)
    rare = _train(tmp_path / "rare", CheckpointPolicy(seconds=1e6))
    assert every.last == [1, 2, 3, 4, 5, 6]
    assert rare.last == [6]  # only the run's end was due
    improved = [e.epoch for e in rare.epochs if e.improved]
    assert improved and every.best == improved
    # Each best state is sent with the next checkpoint: here, the end's. The file holds the last
    # best epoch's state, the same as with a checkpoint every epoch.
    assert rare.best[-1] == improved[-1]
    a = torch.load(tmp_path / "every" / "runs" / "adam" / "checkpoint-best.pt", weights_only=True)
    b = torch.load(tmp_path / "rare" / "runs" / "adam" / "checkpoint-best.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == improved[-1]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


def test_every_two_epochs(tmp_path: Path) -> None:
    assert _train(tmp_path / "two", CheckpointPolicy(seconds=None, epochs=2)).last == [2, 4, 6]


def test_results_json_is_written_at_run_ends_not_at_every_epoch(tmp_path: Path, monkeypatch) -> None:
    writes: list[str] = []
    real = store_module.write_results_json

    def counting(root: Path, doc: dict) -> None:
        writes.append(doc["status"])
        real(root, doc)

    monkeypatch.setattr(store_module, "write_results_json", counting)
    store = _train(tmp_path / "run", EVERY_EPOCH)
    assert len(store.epochs) == 6
    # The first epoch end (nothing written yet), the run's end, the experiment's end and close:
    # the epochs in between fall within RESULTS_EVERY_S of one another.
    assert len(writes) <= 4 and writes[-1] == "finished"


def test_a_mid_epoch_state_resumes_exactly() -> None:
    """A state taken between two intervals within an epoch (how an interrupted run is saved)
    resumes to the same epochs as a run never stopped."""
    torch.set_num_threads(1)
    loaded = load_preset_text(PRESET.replace("batch_size = 50", "batch_size = 20"))
    spec, data = loaded.resolved_runs()[0], load_dataset(loaded.preset.data)

    def epochs(trainer: Trainer) -> list[dict]:
        out = []
        while not trainer.done:
            out += [{k: v for k, v in e.to_dict().items() if k not in ("epoch_s", "elapsed_s")}
                    for e in trainer.advance() if isinstance(e, EpochEnded)]
        return out

    straight = epochs(Trainer(spec, data))
    first = Trainer(spec, data)
    while first.step < first.steps_per_epoch + first.log_every:
        first.advance()
    assert first.mid_epoch and first.can_checkpoint_now
    resumed = Trainer(spec, data)
    resumed.load_state_dict(first.state_dict())
    assert epochs(resumed) == straight[1:]
