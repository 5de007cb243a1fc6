"""Dropout in a fusion group: run k's masks are the ones its unfused forward draws from its own
random state (same draws, same state after), the written-out backward takes them as autograd
does, evaluation drops nothing, and a group trained with dropout matches the unfused runs
within the fused tolerance, its checkpoints holding exactly the unfused random states."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.events import RunEnded, RunStarted
from optlab.training.executor import LocalExecutor
from optlab.training.fused.host import FusedLocalExecutor
from optlab.training.fused.plan import plan
from optlab.training.fused.relu_ce import relu_ce_step, relu_stack
from optlab.training.fused.stacked import StackedMLP, dropout_mask, stack_error
from optlab.training.runner import Runner
from tests.unit.test_fused_training import WEIGHT_SHARE, Collect, assert_events_match


def _models(k: int, p: float = 0.3) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(p), nn.Linear(16, 8), nn.ReLU(),
                          nn.Dropout(p / 2), nn.Linear(8, 5)) for _ in range(k)]


def _states(k: int) -> list[torch.Tensor]:
    out = []
    for seed in range(k):
        torch.manual_seed(100 + seed)
        out.append(torch.get_rng_state())
    return out


def _generators(states: list[torch.Tensor]) -> list[torch.Generator]:
    gens = [torch.Generator() for _ in states]
    for g, state in zip(gens, states, strict=True):
        g.set_state(state)
    return gens


def test_each_runs_mask_is_the_one_torch_dropout_draws_from_its_state() -> None:
    states = _states(3)
    gens = _generators(states)
    h = torch.randn(3, 16, 7)  # [K, width, B], the stack's layout
    mask = dropout_mask(h, 0.3, gens)
    for k, state in enumerate(states):
        torch.set_rng_state(state)
        # torch's own dropout of ones is its noise: empty_like(x).bernoulli_(1 - p).div_(1 - p).
        noise = F.dropout(torch.ones(7, 16), 0.3, training=True)
        assert torch.equal(mask[k].t(), noise)
        assert torch.equal(gens[k].get_state(), torch.get_rng_state())  # the state moved as unfused


def test_the_stacked_forward_drops_as_each_unfused_model_does() -> None:
    models = _models(3)
    plain = copy.deepcopy(models)
    states = _states(3)
    stack = StackedMLP(models)
    gens = _generators(states)
    x = torch.randn(9, 3, 4)
    out = stack.forward(x, gens)
    out2 = stack.forward(x, gens)  # the second step draws the next masks, as unfused
    for k, model in enumerate(plain):
        model.train()
        torch.set_rng_state(states[k])
        first, second = model(x), model(x)
        torch.testing.assert_close(out[k], first, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out2[k], second, rtol=1e-5, atol=1e-6)
        assert torch.equal(gens[k].get_state(), torch.get_rng_state())
        model.eval()
        torch.testing.assert_close(stack.forward(x)[k], model(x), rtol=1e-5, atol=1e-6)  # no generators: eval


@pytest.mark.parametrize("p", [0.3, 1.0])
def test_written_out_step_with_dropout_matches_autograd(p: float) -> None:
    torch.set_num_threads(1)
    k, b = 3, 7
    x, y = torch.randn(b, 3, 4), torch.randint(0, 5, (b,))
    stack = StackedMLP(_models(k, p))
    assert relu_stack(stack) and stack.has_dropout
    states = _states(k)
    out = stack.forward(x, _generators(states))
    losses = F.cross_entropy(out.transpose(1, 2), y.expand(k, b), reduction="none").mean(1)
    stack.zero_grad()
    stack.backward(losses.sum())
    expected = stack.grad.clone()
    stack.grad.fill_(float("nan"))  # every segment must be written
    got_losses, got_out = relu_ce_step(stack, x, y, 0.0, _generators(states))
    torch.testing.assert_close(got_losses, losses.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got_out, out.detach(), rtol=0, atol=0)
    torch.testing.assert_close(stack.grad, expected, rtol=1e-5, atol=1e-7)


def test_dropout_before_the_first_linear_layer_does_not_stack() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(12, 5))
    assert stack_error(model) == "a Dropout before the first Linear layer has no stacked form"


PRESET = """
name = "d"
[data]
dataset = "digits"
train_limit = 400
[model]
name = "mlp"
hidden = [32, 16]
dropout = 0.2
[train]
epochs = 2
batch_size = 32
seed = 0
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
[[runs]]
name = "rmsprop"
optimizer = { name = "rmsprop", lr = 1e-3 }
"""


@pytest.mark.parametrize("activation", ["relu", "tanh"])  # the written-out backward, and autograd's
def test_a_dropout_group_matches_unfused_and_keeps_each_runs_random_state(activation: str) -> None:
    torch.set_num_threads(1)
    loaded = load_preset_text(PRESET.replace('dropout = 0.2', f'dropout = 0.2\nactivation = "{activation}"'))
    specs, data = loaded.resolved_runs(), load_dataset(loaded.preset.data)
    assert plan(specs).groups == {s.name: ("fuse-1", 3) for s in specs}
    plain, fused = Collect(), Collect()
    Runner(specs, data, "cpu", [plain], executor=LocalExecutor(data, "cpu")).run()
    Runner(specs, data, "cpu", [fused], executor=FusedLocalExecutor(data, "cpu", specs)).run()
    names = [s.name for s in specs]
    assert all(fused.of(RunStarted, n)[0].placement["fused"]["size"] == 3 for n in names)
    assert_events_match(plain, fused, names)
    for name in names:
        assert fused.of(RunEnded, name)[0].status == "finished"
        # The same masks drawn the same number of times: the random state is the unfused one exactly.
        assert torch.equal(fused.states[name]["rng_cpu"], plain.states[name]["rng_cpu"]), name
        for key, value in plain.states[name]["model"].items():
            got = fused.states[name]["model"][key]
            assert ((got - value).abs().max() / value.abs().max()).item() <= WEIGHT_SHARE, (name, key)


def test_a_fused_dropout_checkpoint_resumes_unfused_as_the_unfused_run_goes_on() -> None:
    # Epoch 1 fused, resumed by the unfused engine for epoch 2: its random state is the unfused
    # one, so epoch 2 draws the unfused run's masks and ends where two unfused epochs do.
    from optlab.training.checkpoint_policy import EVERY_EPOCH

    class First(Collect):
        def __init__(self) -> None:
            super().__init__()
            self.first: dict[str, dict] = {}

        def checkpoint(self, run: str, state: dict, is_best: bool) -> None:
            self.first.setdefault(run, copy.deepcopy(state))  # the live tensors move on
            super().checkpoint(run, state, is_best)

    torch.set_num_threads(1)
    loaded = load_preset_text(PRESET)
    specs, data = loaded.resolved_runs(), load_dataset(loaded.preset.data)
    fused, resumed, straight = First(), Collect(), Collect()
    Runner(specs, data, "cpu", [fused], checkpoints=EVERY_EPOCH, executor=FusedLocalExecutor(data, "cpu", specs)).run()
    assert {s["epoch"] for s in fused.first.values()} == {1}
    Runner(specs, data, "cpu", [resumed], resume=fused.first, executor=LocalExecutor(data, "cpu")).run()
    Runner(specs, data, "cpu", [straight], executor=LocalExecutor(data, "cpu")).run()
    for spec in specs:
        a, b = straight.of(RunEnded, spec.name)[0], resumed.of(RunEnded, spec.name)[0]
        assert (a.status, a.step) == (b.status, b.step) and a.status == "finished"
        assert abs(a.test["accuracy"] - b.test["accuracy"]) <= 1 / a.test["n"] + 1e-12
        assert torch.equal(straight.states[spec.name]["rng_cpu"], resumed.states[spec.name]["rng_cpu"])
        for key, value in straight.states[spec.name]["model"].items():
            got = resumed.states[spec.name]["model"][key]
            assert ((got - value).abs().max() / value.abs().max()).item() <= WEIGHT_SHARE, (spec.name, key)
