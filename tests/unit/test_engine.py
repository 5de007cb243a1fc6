"""The engine: fairness, determinism, divergence, side-by-side interleaving, events."""

from __future__ import annotations

import math

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.events import EpochEnded, Progress, RunEnded, RunStarted
from optlab.training.runner import Control, Runner
from optlab.training.trainer import Trainer, epoch_permutation

BASE = """
name = "t"
[data]
dataset = "digits"
train_limit = 400
[model]
name = "mlp"
hidden = [32]
dropout = 0.2
[train]
epochs = 2
batch_size = 32
seed = 0
"""


class Collect:
    def __init__(self) -> None:
        self.events: list = []

    def handle(self, event) -> None:
        self.events.append(event)

    def of(self, kind: type, run: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind) and (run is None or e.run == run)]


def run(runs_toml: str, base: str = BASE, control: Control | None = None) -> Collect:
    loaded = load_preset_text(base + runs_toml)
    data = load_dataset(loaded.preset.data)
    sink = Collect()
    Runner(loaded.resolved_runs(), data, "cpu", [sink], control).run()
    return sink


def histories(sink: Collect, name: str) -> list[tuple]:
    return [(e.train_loss, e.val_loss, e.val_accuracy) for e in sink.of(EpochEnded, name)]


def test_same_model_and_seed_start_identical_and_see_same_order() -> None:
    sink = run(
        """
[[runs]]
name = "a"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "b"
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 64
[[runs]]
name = "c"
seed = 1
"""
    )
    started = {e.run: e for e in sink.of(RunStarted)}
    assert started["a"].init_fingerprint == started["b"].init_fingerprint
    assert started["a"].data_fingerprint == started["b"].data_fingerprint
    assert started["c"].init_fingerprint != started["a"].init_fingerprint
    assert started["c"].data_fingerprint != started["a"].data_fingerprint


def test_batch_size_only_changes_how_the_same_order_is_sliced() -> None:
    order = epoch_permutation(seed=3, epoch=1, n=100)
    assert torch.equal(order, epoch_permutation(3, 1, 100))
    assert not torch.equal(order, epoch_permutation(3, 2, 100))
    loaded = load_preset_text(BASE + '[[runs]]\nname = "a"\n[[runs]]\nname = "b"\nbatch_size = 7\n')
    data = load_dataset(loaded.preset.data)
    a, b = (Trainer(spec, data) for spec in loaded.resolved_runs())
    assert a.data_fingerprint == b.data_fingerprint
    # 400 = 57 * 7 + 1: the lone last sample joins the previous batch (batch norm needs > 1).
    assert b.steps_per_epoch == 57
    assert a.steps_per_epoch == math.ceil(400 / 32)


def test_identical_runs_give_identical_histories_even_interleaved() -> None:
    sink = run('[[runs]]\nname = "a"\n[[runs]]\nname = "b"\n[[runs]]\nname = "other-seed"\nseed = 5\n')
    assert histories(sink, "a") == histories(sink, "b")
    assert histories(sink, "a") != histories(sink, "other-seed")
    # And equal to the same run trained alone: interleaving does not leak randomness (dropout).
    alone = run('[[runs]]\nname = "a"\n')
    assert histories(alone, "a") == histories(sink, "a")
    ended = {e.run: e for e in sink.of(RunEnded)}
    assert ended["a"].test == ended["b"].test


def test_divergent_run_ends_diverged_while_others_finish() -> None:
    sink = run(
        """
[[runs]]
name = "huge-lr"
optimizer = { name = "sgd", lr = 1e12 }
[[runs]]
name = "fine"
optimizer = { name = "adam", lr = 1e-2 }
"""
    )
    ended = {e.run: e for e in sink.of(RunEnded)}
    assert ended["huge-lr"].status == "diverged"
    assert "non-finite loss" in ended["huge-lr"].reason
    assert f"step {ended['huge-lr'].step}" in ended["huge-lr"].reason
    assert ended["huge-lr"].test is None
    assert ended["fine"].status == "finished"
    assert ended["fine"].test["accuracy"] > 0.5


def test_events_progress_once_per_interval_and_epoch_records() -> None:
    sink = run('[[runs]]\nname = "a"\nlog_every = 5\n')
    steps_per_epoch = math.ceil(400 / 32)
    progress = sink.of(Progress, "a")
    # One report per 5 steps, plus one at each epoch's last step.
    assert len(progress) == 2 * math.ceil(steps_per_epoch / 5)
    assert [p.step for p in progress][-1] == 2 * steps_per_epoch
    assert all(p.samples_seen <= 800 and p.lr == pytest.approx(0.01) for p in progress)
    epochs = sink.of(EpochEnded, "a")
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0.0 <= e.val_accuracy <= 1.0 and e.train_loss > 0 for e in epochs)
    ended = sink.of(RunEnded, "a")[0]
    assert ended.status == "finished" and ended.epochs_completed == 2
    assert set(ended.test) >= {"accuracy", "precision", "recall", "f1", "specificity", "roc_auc"}


def test_runs_advance_side_by_side() -> None:
    sink = run('[[runs]]\nname = "small"\nbatch_size = 8\n[[runs]]\nname = "big"\nbatch_size = 128\n')
    total = {e.run: e.total_steps for e in sink.of(RunStarted)}
    # One reporting interval of each run, as a share of its work.
    interval = {
        run: max(b.step - a.step for a, b in zip([Progress(run=run)] + steps, steps, strict=False)) / total[run]
        for run in total
        if (steps := sink.of(Progress, run))
    }
    assert interval["small"] <= 0.05  # many intervals: the check below is a tight one
    # Whenever a run reports, no other run is more than one interval ahead in share of work.
    done = {"small": 0.0, "big": 0.0}
    for event in sink.events:
        if isinstance(event, Progress):
            done[event.run] = event.step / total[event.run]
            assert abs(done["small"] - done["big"]) <= max(interval.values()) + 1e-9


def test_stop_control_ends_one_run_as_stopped() -> None:
    control = Control()
    control.stop("a")
    sink = run('[[runs]]\nname = "a"\n[[runs]]\nname = "b"\n', control=control)
    ended = {e.run: e for e in sink.of(RunEnded)}
    assert ended["a"].status == "stopped" and ended["b"].status == "finished"
    assert ended["a"].test is not None  # stopped runs are still tested on their current weights


def test_early_stopping_restores_best_and_reports_it() -> None:
    sink = run(
        """
[[runs]]
name = "es"
epochs = 30
optimizer = { name = "adam", lr = 0.05 }
early_stopping = { patience = 2, metric = "val_loss", restore_best = true }
"""
    )
    ended = sink.of(RunEnded, "es")[0]
    epochs = sink.of(EpochEnded, "es")
    assert ended.status == "early_stopped"
    best = min(epochs, key=lambda e: e.val_loss)
    assert ended.best_epoch == best.epoch
    assert ended.epochs_completed == best.epoch + 2


def test_checkpoint_state_resumes_exactly() -> None:
    loaded = load_preset_text(BASE + '[[runs]]\nname = "a"\nepochs = 3\n')
    data = load_dataset(loaded.preset.data)
    spec = loaded.resolved_runs()[0]

    def epochs_of(trainer: Trainer) -> list[dict[str, object]]:
        """Every epoch the trainer reports until it ends, without its timing."""
        records = []
        while not trainer.done:
            records += [
                {k: v for k, v in e.to_dict().items() if k not in ("epoch_s", "elapsed_s")}
                for e in trainer.advance() if isinstance(e, EpochEnded)
            ]
        return records

    straight = Trainer(spec, data)
    straight_epochs = epochs_of(straight)
    first = Trainer(spec, data)
    while first.epoch < 1:
        first.advance()
    state = first.state_dict()
    resumed = Trainer(spec, data)
    resumed.load_state_dict(state)
    assert epochs_of(resumed) == straight_epochs[1:]
    assert resumed.ended.test == straight.ended.test


def test_regression_validation_rmse_is_sklearns_in_target_units_whatever_the_loss() -> None:
    """Runs trained with MSE and L1 are compared on one validation number: the RMSE of their
    predictions in the target's own units, equal to scikit-learn's."""
    import numpy as np
    from sklearn.metrics import mean_squared_error

    from optlab.training.losses import probabilities

    base = BASE.replace('dataset = "digits"\ntrain_limit = 400', 'dataset = "diabetes"').replace("dropout = 0.2", "")
    loaded = load_preset_text(base + '[[runs]]\nname = "mse"\nloss = "mse"\n[[runs]]\nname = "l1"\nloss = "l1"\n')
    data = load_dataset(loaded.preset.data)
    assert data.target_std > 10  # diabetes targets are in the hundreds: the units matter
    for spec in loaded.resolved_runs():
        trainer = Trainer(spec, data)
        ended = []
        while trainer.epoch < 1:
            ended += [e for e in trainer.advance() if isinstance(e, EpochEnded)]
        trainer.model.eval()
        with torch.inference_mode():
            pred = probabilities(trainer.model(data.x_val), "regression", spec.loss).double().numpy()
        y_true = data.y_val.double().numpy() * data.target_std + data.target_mean
        y_pred = pred * data.target_std + data.target_mean
        expected = math.sqrt(mean_squared_error(y_true, y_pred))
        (record,) = ended
        assert record.val_rmse == pytest.approx(expected, rel=1e-9)
        assert record.val_accuracy is None and np.isfinite(record.val_loss)


def test_a_run_whose_resume_state_does_not_load_fails_alone() -> None:
    loaded = load_preset_text(BASE + '[[runs]]\nname = "a"\n[[runs]]\nname = "b"\n')
    data = load_dataset(loaded.preset.data)
    specs = loaded.resolved_runs()
    first = Trainer(specs[0], data)
    while first.epoch < 1:
        first.advance()
    state = first.state_dict()
    state["model"] = {k: v[:1] for k, v in state["model"].items()}  # shapes that fit no model
    sink = Collect()
    Runner(specs, data, "cpu", [sink], resume={"a": state}).run()
    ended = {e.run: e for e in sink.of(RunEnded)}
    assert ended["a"].status == "failed" and "size mismatch" in ended["a"].reason
    assert "Traceback" in ended["a"].detail
    assert ended["b"].status == "finished"


def test_shuffle_false_keeps_the_dataset_order_every_epoch() -> None:
    from optlab.training.trainer import fingerprint_tensors

    loaded = load_preset_text(BASE + '[[runs]]\nname = "kept"\nshuffle = false\n[[runs]]\nname = "shuffled"\n')
    data = load_dataset(loaded.preset.data)
    kept, shuffled = (Trainer(spec, data) for spec in loaded.resolved_runs())
    n = data.x_train.shape[0]
    in_order = fingerprint_tensors([torch.arange(n), torch.tensor(data.x_train.shape)])
    assert kept.data_fingerprint == in_order != shuffled.data_fingerprint  # the record proves which
    assert torch.equal(epoch_permutation(0, 2, n, shuffle=False), torch.arange(n))
    kept.advance()
    assert torch.equal(kept._perm.cpu(), torch.arange(n))


def test_recorded_learning_rate_is_the_one_the_step_or_epoch_trained_with() -> None:
    """An epoch's `lr` is the rate it trained at, not the rate after its scheduler step
    (exponential, gamma 0.5, lr 0.1: epochs train at 0.1, 0.05, 0.025); a per-batch schedule's
    progress report carries its interval's last batch's rate."""
    sink = run(
        """
[[runs]]
name = "exp"
epochs = 3
optimizer = { name = "sgd", lr = 0.1 }
scheduler = { name = "exponential", gamma = 0.5 }
[[runs]]
name = "linear"
log_every = 1
optimizer = { name = "sgd", lr = 0.1 }
scheduler = { name = "onecycle", max_lr = 0.1 }
"""
    )
    assert [e.lr for e in sink.of(EpochEnded, "exp")] == pytest.approx([0.1, 0.05, 0.025])
    assert all(p.lr == pytest.approx(0.1 * 0.5 ** (p.epoch - 1)) for p in sink.of(Progress, "exp"))
    # One-cycle moves the rate every batch: with one batch per report, report k carries the
    # rate batch k trained with, so the first equals the schedule's starting rate.
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    total = 2 * math.ceil(400 / 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [p.lr for p in sink.of(Progress, "linear")] == pytest.approx(expected)
