"""The written-out step of a stacked ReLU MLP under cross-entropy against autograd's: the same
losses and logits, the same gradients to float32 rounding, with and without label smoothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optlab.training.fused.relu_ce import relu_ce_step, relu_stack
from optlab.training.fused.stacked import StackedMLP


def _models(k: int, hidden: list[int], activation: type[nn.Module] = nn.ReLU) -> list[nn.Module]:
    torch.manual_seed(0)
    out = []
    for _ in range(k):
        layers: list[nn.Module] = [nn.Flatten()]
        width = 12
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        out.append(nn.Sequential(*layers, nn.Linear(width, 5)))
    return out


@pytest.mark.parametrize("hidden", [[], [16], [16, 8]])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_written_out_step_matches_autograd(hidden: list[int], smoothing: float) -> None:
    torch.set_num_threads(1)
    k, b = 3, 7
    x, y = torch.randn(b, 3, 4), torch.randint(0, 5, (b,))
    stack = StackedMLP(_models(k, hidden))
    assert relu_stack(stack)
    out = stack.forward(x)
    per_sample = F.cross_entropy(out.transpose(1, 2), y.expand(k, b), label_smoothing=smoothing, reduction="none")
    losses = per_sample.mean(1)
    stack.zero_grad()
    stack.backward(losses.sum())
    expected = stack.grad.clone()
    stack.grad.fill_(float("nan"))  # every segment must be written
    got_losses, got_out = relu_ce_step(stack, x, y, smoothing)
    torch.testing.assert_close(got_losses, losses.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got_out, out.detach(), rtol=0, atol=0)
    torch.testing.assert_close(stack.grad, expected, rtol=1e-5, atol=1e-7)


def test_other_activations_take_autograds_way() -> None:
    assert not relu_stack(StackedMLP(_models(2, [16], nn.Tanh)))
