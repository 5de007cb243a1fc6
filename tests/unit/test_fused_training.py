"""Fused groups against the same runs trained unfused: same events, numbers within the
measured tolerance, runs that cannot fuse noted and trained alone."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.checkpoint_policy import EVERY_EPOCH
from optlab.training.events import EpochEnded, Progress, RunEnded, RunStarted
from optlab.training.executor import LocalExecutor
from optlab.training.fused.host import FusedLocalExecutor
from optlab.training.runner import Control, Runner

BASE = """
name = "t"
[data]
dataset = "digits"
train_limit = 400
[model]
name = "mlp"
hidden = [32, 16]
[train]
epochs = 2
batch_size = 32
seed = 0
"""

RUNS = """
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "nesterov"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9, nesterov = true }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
scheduler = { name = "cosine" }
[[runs]]
name = "adamw"
optimizer = { name = "adamw", lr = 2e-3, weight_decay = 1e-2, weight_decay_on = "matrices" }
scheduler = { name = "onecycle", warmup_epochs = 0.5 }
[[runs]]
name = "rmsprop"
optimizer = { name = "rmsprop", lr = 1e-3, momentum = 0.5 }
[[runs]]
name = "adagrad"
optimizer = { name = "adagrad", lr = 0.05 }
l1 = 1e-4
[[runs]]
name = "adadelta"
optimizer = { name = "adadelta", lr = 1.0 }
"""

# Measured (one thread, digits): after one epoch on the full training set the final weights
# differ by at most 4e-7 of the largest weight (docs/benchmarks.md); here (two epochs of 400
# samples) by up to 2.3e-7 for sgd, nesterov, adam and adamw, 1.0e-6 for rmsprop and 6.2e-6 for
# adagrad with L1 (the L1 gradient is sign(w): a weight near zero that rounds to the other side
# steps the other way, and adagrad's normalised steps keep it); losses agree to about 1e-6 relative.
LOSS_RTOL = 1e-4
WEIGHT_SHARE = 1e-5  # max |w_fused - w| / max |w|, per tensor


class Collect:
    def __init__(self) -> None:
        self.events: list = []
        self.states: dict[str, dict] = {}

    def handle(self, event) -> None:
        self.events.append(event)

    def checkpoint(self, run: str, state: dict, is_best: bool) -> None:
        self.states[run] = state

    def of(self, kind: type, run: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind) and (run is None or e.run == run)]


def train(fuse: bool, runs: str = RUNS, control: Control | None = None) -> Collect:
    torch.set_num_threads(1)
    loaded = load_preset_text(BASE + runs)
    specs = loaded.resolved_runs()
    data = load_dataset(loaded.preset.data)
    executor = FusedLocalExecutor(data, "cpu", specs) if fuse else LocalExecutor(data, "cpu")
    sink = Collect()
    Runner(specs, data, "cpu", [sink], control, executor=executor).run()
    return sink


@pytest.fixture(scope="module")
def both() -> tuple[Collect, Collect]:
    return train(False), train(True)


def test_fused_runs_record_their_group_and_the_others_why_not(both: tuple[Collect, Collect]) -> None:
    _, fused = both
    started = {e.run: e for e in fused.of(RunStarted)}
    assert {r: e.placement.get("fused") for r, e in started.items() if r != "adadelta"} == {
        r: {"group": "fuse-1", "size": 6} for r in ("sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
    }
    assert "fused" not in started["adadelta"].placement
    assert any("not fused: optimizer 'adadelta' has no vectorized update" in n for n in started["adadelta"].notes)


def test_fused_events_match_unfused_within_tolerance(both: tuple[Collect, Collect]) -> None:
    # With L1 in the group: autograd's backward.
    assert_events_match(*both, ["sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adadelta"])


def test_the_written_out_backward_matches_unfused_within_tolerance() -> None:
    # Without L1, a ReLU MLP under cross-entropy: the backward written out (relu_ce.py).
    runs = RUNS.replace("l1 = 1e-4\n", "").split('[[runs]]\nname = "adadelta"')[0]
    names = ["sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad"]
    plain, fused = train(False, runs), train(True, runs)
    assert_events_match(plain, fused, names)
    for name in names:
        for key, value in plain.states[name]["model"].items():
            got = fused.states[name]["model"][key]
            assert ((got - value).abs().max() / value.abs().max()).item() <= WEIGHT_SHARE, (name, key)


def assert_events_match(plain: Collect, fused: Collect, names: list[str]) -> None:
    for name in names:
        a, b = plain.of(RunStarted, name)[0], fused.of(RunStarted, name)[0]
        assert (a.init_fingerprint, a.data_fingerprint, a.total_steps) == (b.init_fingerprint, b.data_fingerprint,
                                                                           b.total_steps)
        pa, pb = plain.of(Progress, name), fused.of(Progress, name)
        assert [(p.step, p.epoch, p.samples_seen, p.grad_evals) for p in pa] == [
            (p.step, p.epoch, p.samples_seen, p.grad_evals) for p in pb]
        for x, y in zip(pa, pb, strict=True):
            assert math.isclose(x.train_loss, y.train_loss, rel_tol=LOSS_RTOL)
            assert math.isclose(x.lr, y.lr, rel_tol=1e-12)
        ea, eb = plain.of(EpochEnded, name), fused.of(EpochEnded, name)
        assert [e.epoch for e in ea] == [e.epoch for e in eb]
        for x, y in zip(ea, eb, strict=True):
            assert math.isclose(x.val_loss, y.val_loss, rel_tol=LOSS_RTOL)
            assert abs(x.train_accuracy - y.train_accuracy) <= 1 / 400
        ra, rb = plain.of(RunEnded, name)[0], fused.of(RunEnded, name)[0]
        assert (ra.status, ra.epochs_completed, ra.step, ra.grad_evals) == (rb.status, rb.epochs_completed, rb.step,
                                                                            rb.grad_evals)
        n_test = 1 / ra.test["n"] if "n" in ra.test else 0.01
        assert abs(ra.test["accuracy"] - rb.test["accuracy"]) <= n_test + 1e-12


def test_one_member_diverging_leaves_the_others_unchanged() -> None:
    runs = """
[[runs]]
name = "calm"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "wild"
optimizer = { name = "sgd", lr = 1e6 }
"""
    alone = train(True, runs.split("[[runs]]\nname = \"wild\"")[0] + """
[[runs]]
name = "other"
optimizer = { name = "adam", lr = 1e-3 }
""")
    fused = train(True, runs)
    assert fused.of(RunEnded, "wild")[0].status == "diverged"
    assert fused.of(RunEnded, "calm")[0].status == "finished"
    # Elementwise updates and per-run slices: the calm run's numbers do not depend on its neighbour.
    assert [e.train_loss for e in fused.of(Progress, "calm")] == [e.train_loss for e in alone.of(Progress, "calm")]
    assert fused.of(RunEnded, "calm")[0].test == alone.of(RunEnded, "calm")[0].test


def test_checkpoints_are_an_unfused_runs_and_close_to_it(both: tuple[Collect, Collect]) -> None:
    plain, fused = both
    for name in ("sgd", "nesterov", "adam", "adamw", "rmsprop", "adagrad"):
        a, b = plain.states[name], fused.states[name]
        assert a.keys() == b.keys()
        for key, value in a["model"].items():
            assert ((b["model"][key] - value).abs().max() / value.abs().max()).item() <= WEIGHT_SHARE, (name, key)
        sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
        assert sa.keys() == sb.keys()
        for index, entry in sa.items():
            assert entry.keys() == sb[index].keys()
            for key, value in entry.items():
                torch.testing.assert_close(sb[index][key].float(), value.float(), rtol=1e-3, atol=1e-5)
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


def test_a_run_that_ends_leaves_the_stack_and_the_others_go_on_as_if_it_never_was() -> None:
    # z leaves after two intervals: the group re-forms over x and y with their weights, optimizer
    # state (Adam's moments, the momentum buffer, the step count) and this epoch's counts, and
    # from there trains exactly as a group that never had z (each run's matmuls are its own).
    from optlab.training.fused.group import FusedGroup
    from optlab.training.trainer import Trainer

    torch.set_num_threads(1)
    runs = """
[[runs]]
name = "x"
optimizer = { name = "adam", lr = 1e-3 }
[[runs]]
name = "y"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[[runs]]
name = "z"
optimizer = { name = "rmsprop", lr = 1e-3 }
"""
    loaded = load_preset_text(BASE + runs)
    specs, data = loaded.resolved_runs(), load_dataset(loaded.preset.data)

    def group(names: list[str]) -> FusedGroup:
        return FusedGroup("g", [Trainer(s, data, "cpu") for s in specs if s.name in names])

    three, two = group(["x", "y", "z"]), group(["x", "y"])
    for _ in range(2):
        three.train_interval()
        two.train_interval()
    z = next(t for t in three.trainers if t.spec.name == "z")
    z.end("stopped", "by the test", evaluate_test=False)
    three.leave(z)
    assert three.k == 2 and [t.spec.name for t in three.trainers] == [t.spec.name for t in two.trainers]
    for _ in range(3):
        three.train_interval()
        two.train_interval()
    for a, b in zip(three.trainers, two.trainers, strict=True):
        assert (a.step, a.epoch, int(a.correct), a.stepper.grad_evals) == (b.step, b.epoch, int(b.correct),
                                                                            b.stepper.grad_evals)
        for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.equal(pa, pb), a.spec.name
        three.sync_state(a)
        two.sync_state(b)
        for sa, sb in zip(a.optimizer.state.values(), b.optimizer.state.values(), strict=True):
            assert sa.keys() == sb.keys() and all(torch.equal(sa[key], sb[key]) for key in sa)
    assert [e.to_dict() for e in three.pending["x"]][-1]["train_loss"] == [e.to_dict() for e in two.pending["x"]][-1]["train_loss"]


def test_a_fused_checkpoint_resumes_unfused_as_the_unfused_run_goes_on() -> None:
    # Epoch 1 fused, its checkpoint resumed by the unfused engine for epoch 2: the same run as
    # two unfused epochs, within the fused tolerance (the optimizer state carries over exactly).
    runs = RUNS.split('[[runs]]\nname = "adadelta"')[0]

    class Every(Collect):
        def __init__(self) -> None:
            super().__init__()
            self.first: dict[str, dict] = {}

        def checkpoint(self, run: str, state: dict, is_best: bool) -> None:
            # A copy: the state's tensors are the live ones (a run store writes them at once).
            self.first.setdefault(run, copy.deepcopy(state))
            super().checkpoint(run, state, is_best)

    torch.set_num_threads(1)
    loaded = load_preset_text(BASE + runs)
    specs, data = loaded.resolved_runs(), load_dataset(loaded.preset.data)
    fused = Every()
    Runner(specs, data, "cpu", [fused], checkpoints=EVERY_EPOCH, executor=FusedLocalExecutor(data, "cpu", specs)).run()
    assert {s["epoch"] for s in fused.first.values()} == {1}
    resumed, straight = Collect(), Collect()
    Runner(specs, data, "cpu", [resumed], resume=fused.first, executor=LocalExecutor(data, "cpu")).run()
    Runner(specs, data, "cpu", [straight], executor=LocalExecutor(data, "cpu")).run()
    for spec in specs:
        a, b = straight.of(RunEnded, spec.name)[0], resumed.of(RunEnded, spec.name)[0]
        assert (a.status, a.epochs_completed, a.step) == (b.status, b.epochs_completed, b.step) == ("finished", 2, a.step)
        assert abs(a.test["accuracy"] - b.test["accuracy"]) <= 1 / a.test["n"] + 1e-12
        for key, value in straight.states[spec.name]["model"].items():
            got = resumed.states[spec.name]["model"][key]
            assert ((got - value).abs().max() / value.abs().max()).item() <= WEIGHT_SHARE, (spec.name, key)


def test_a_pause_holds_every_member_of_a_group_and_changes_no_number() -> None:
    # A pause is the experiment's (Control.pause, control.json's "paused"): the driver sends no
    # request while it lasts, so no member asks the group to train and none advances; the one
    # request in flight when it came is answered (it trained before the pause). Then the runs
    # go on to the same numbers as without a pause.
    runs = RUNS.split('[[runs]]\nname = "adam"')[0]
    executor: list[FusedLocalExecutor] = []

    class PauseOnce(Control):
        def __init__(self) -> None:
            super().__init__()
            self.held: list[dict[str, int]] = []

        def steps(self) -> dict[str, int]:
            return {name: t.step for name, t in executor[0].host.trainers.items()}

        def poll(self) -> None:
            if self.paused:
                self.held.append(self.steps())
                if len(self.held) == 20:
                    self.resume()

    class PauseAtFirstProgress(Collect):
        def handle(self, event) -> None:
            super().handle(event)
            if isinstance(event, Progress) and not control.held and not control.paused:
                control.pause()

    control = PauseOnce()
    torch.set_num_threads(1)
    loaded = load_preset_text(BASE + runs)
    specs, data = loaded.resolved_runs(), load_dataset(loaded.preset.data)
    executor.append(FusedLocalExecutor(data, "cpu", specs))
    paused = PauseAtFirstProgress()
    Runner(specs, data, "cpu", [paused], control, executor=executor[0]).run()
    assert len(control.held) == 20
    assert all(held == control.held[0] for held in control.held)  # nothing trained while paused
    assert sorted(control.held[0]) == ["nesterov", "sgd"]
    assert 0 < min(control.held[0].values()) < paused.of(RunStarted, "sgd")[0].total_steps  # mid-run
    straight = train(True, runs)
    for name in ("sgd", "nesterov"):
        assert [e.train_loss for e in paused.of(Progress, name)] == [e.train_loss for e in straight.of(Progress, name)]
        assert paused.of(RunEnded, name)[0].test == straight.of(RunEnded, name)[0].test
