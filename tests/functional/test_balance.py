"""Moving a run between the processes backend's workers (`optlab.training.balance`) changes
nothing it computes nor anything its record holds: the moved run's events, checkpoints and test
metrics equal those of the same runs trained locally, each written once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.balance import Balancer, Move
from optlab.training.checkpoint_policy import CheckpointPolicy
from optlab.training.events import EpochEnded, Progress, RunEnded, RunStarted
from optlab.training.processes import ProcessExecutor
from optlab.training.runner import Runner

PRESET = """
name = "balance"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [32]
dropout = 0.3
[train]
epochs = 20
batch_size = 32
seed = 3
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
scheduler = { name = "cosine" }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
[[runs]]
name = "rms"
optimizer = { name = "rmsprop", lr = 1e-3 }
"""
# Every third epoch: a moved run's next checkpoint must fall where it would have unmoved.
EVERY_3_EPOCHS = CheckpointPolicy(seconds=None, epochs=3)


class Record:
    """Every event, and every checkpoint a run directory would be written (run, epoch)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.checkpoints: list[tuple[str, int, bool]] = []
        self.best: list[tuple[str, int]] = []

    def handle(self, event: Any) -> None:
        self.events.append(event)

    def checkpoint(self, run: str, state: dict[str, Any], improved: bool) -> None:
        assert "handed_over" not in state  # a hand-over's state is never written
        self.checkpoints.append((run, state["epoch"], improved))

    def best_checkpoint(self, run: str, state: dict[str, Any]) -> None:
        self.best.append((run, state["epoch"]))

    def numbers(self, run: str) -> list[tuple[Any, ...]]:
        """What must not depend on where (and on how many workers) the run trained."""
        out: list[tuple[Any, ...]] = []
        for e in self.events:
            if e.run != run:
                continue
            if isinstance(e, RunStarted):
                out.append(("started", e.resumed_step, e.init_fingerprint, e.data_fingerprint))
            elif isinstance(e, Progress):
                out.append(("progress", e.step, e.epoch, e.samples_seen, e.train_loss, e.lr, e.grad_evals))
            elif isinstance(e, EpochEnded):
                out.append(("epoch", e.epoch, e.step, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy,
                            e.lr, e.improved))
            elif isinstance(e, RunEnded):
                out.append(("ended", e.status, e.reason, e.epochs_completed, e.step, e.best_epoch, e.grad_evals,
                            e.test))
        return out


@dataclass
class MoveOnce(Balancer):
    """Moves `run` to another worker once it has completed `after_epoch` epochs."""

    run: str = ""
    after_epoch: int = 1
    asked: bool = False

    def consider(self, runs: Any, executor: Any) -> list[Move]:
        run = runs[self.run]
        if self.asked or run.state != "active" or run.epoch < self.after_epoch:
            return []
        self.asked = True
        source = executor.slot(self.run)
        return [Move(self.run, source, executor.peers(source)[0])]


def reference(specs: list[Any], data: Any) -> Record:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker trains
    try:
        record = Record()
        Runner(specs, data, "cpu", [record], checkpoints=EVERY_3_EPOCHS).run()
        return record
    finally:
        torch.set_num_threads(threads)


def assert_same(got: Record, want: Record, runs: list[str]) -> None:
    for run in runs:
        assert got.numbers(run) == want.numbers(run), run
        assert sum(isinstance(e, RunStarted) and e.run == run for e in got.events) == 1, run
    assert sorted(got.checkpoints) == sorted(want.checkpoints)
    assert len(set(got.checkpoints)) == len(got.checkpoints)  # nothing written twice
    assert sorted(got.best) == sorted(want.best)


@pytest.mark.slow
def test_a_run_moved_mid_training_computes_and_records_what_it_would_have() -> None:
    loaded = load_preset_text(PRESET)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data)
    want = reference(specs, data)

    got = Record()
    executor = ProcessExecutor(["cpu", "cpu"], threads=1)
    balancer = MoveOnce(run="rms", after_epoch=1)
    Runner(specs, data, "cpu", [got], executor=executor, checkpoints=EVERY_3_EPOCHS, balancer=balancer).run()

    assert balancer.moved == [Move("rms", "w0", "w1")]  # dealt in order: sgd and rms shared w0
    assert executor.slot("rms") == "w1"
    assert_same(got, want, ["sgd", "adam", "rms"])
    started = [e for e in got.events if isinstance(e, RunStarted)]
    assert all(e.placement["device"] == "cpu" and e.placement["backend"] == "processes" for e in started)


SKEWED = PRESET.replace("epochs = 20", "epochs = 30").replace(
    'name = "sgd"\n', 'name = "sgd"\nbatch_size = 4\n'  # about 8x the steps of the others: the slow one
)


@pytest.mark.slow
def test_the_default_policy_moves_a_run_off_the_busiest_worker() -> None:
    """sgd (slow) and rms share w0, adam trains alone on w1: with the thresholds down, the
    policy moves a run as soon as the speeds are measured, and nothing the runs compute changes."""
    loaded = load_preset_text(SKEWED)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data)
    want = reference(specs, data)

    got = Record()
    balancer = Balancer(min_gain_s=0.0, min_gain_share=0.0, measure_s=0.02, every_s=0.05, move_cost_s=0.0)
    Runner(specs, data, "cpu", [got], executor=ProcessExecutor(["cpu", "cpu"], threads=1),
           checkpoints=EVERY_3_EPOCHS, balancer=balancer).run()

    assert balancer.moved  # rms to w1, or a swap that ends as early
    assert_same(got, want, ["sgd", "adam", "rms"])


class HandsOverExecutor(ProcessExecutor):
    """Keeps what each hand-over's state says: (run, step, mid-epoch, the epoch's loss so far)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[tuple[str, int, bool, float]] = []

    def advance(self, run: str, checkpoints: Any, budget_s: float = 0.0, past_epoch_ends: bool = False) -> None:
        # One interval per request (a tiny MLP's budget would reach the epoch's end): replies,
        # and so hand-overs, end between two intervals of an epoch.
        super().advance(run, checkpoints, 0.0, past_epoch_ends)

    def collect(self, timeout: float) -> list[Any]:
        replies = super().collect(timeout)
        for reply in replies:
            if reply.kind == "handed" and reply.checkpoint is not None:
                state = reply.checkpoint.unpack()
                self.handed.append((reply.run, state["step"], state["mid_epoch"], state["epoch_loss_sum"]))
        return replies


@dataclass
class MoveMidEpoch(Balancer):
    """Moves `run` while it is within an epoch (its last reply ended between two intervals), to
    the other worker and back, until a hand-over's state was taken mid-epoch (a few tries)."""

    run: str = ""
    tries: int = 0

    def consider(self, runs: Any, executor: Any) -> list[Move]:
        run = runs[self.run]
        steps_per_epoch = run.total_steps // run.spec.epochs
        if (self.tries >= 4 or any(h[2] for h in executor.handed) or run.state != "active"
                or run.moving is not None or run.rejoining or run.epoch < 1 or run.step % steps_per_epoch == 0
                or run.total_steps - run.step < 2 * steps_per_epoch):
            return []
        self.tries += 1
        source = executor.slot(self.run)
        return [Move(self.run, source, executor.peers(source)[0])]


MID_EPOCH = PRESET.replace(
    "seed = 3\n", "seed = 3\nlog_every = 2\n"  # intervals of 2 steps: replies end within epochs
).replace("epochs = 20", "epochs = 8")


@pytest.mark.slow
def test_a_run_moved_mid_epoch_goes_on_from_the_epochs_partial_sums() -> None:
    loaded = load_preset_text(MID_EPOCH)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data)
    want = reference(specs, data)

    got = Record()
    executor = HandsOverExecutor(["cpu", "cpu"], threads=1)
    balancer = MoveMidEpoch(run="rms")
    Runner(specs, data, "cpu", [got], executor=executor, checkpoints=EVERY_3_EPOCHS, balancer=balancer).run()

    mid = [h for h in executor.handed if h[2]]
    assert mid, executor.handed  # a state taken between two intervals of an epoch
    run, step, _, loss_sum = mid[0]
    total = next(e.total_steps for e in got.events if isinstance(e, RunStarted) and e.run == "rms")
    assert run == "rms" and loss_sum > 0.0 and step % (total // specs[2].epochs) != 0
    assert balancer.moved  # and moved on it
    assert_same(got, want, ["sgd", "adam", "rms"])  # events, test metrics, checkpoints: as local
