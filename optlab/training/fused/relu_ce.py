"""A stacked ReLU MLP's step under cross-entropy with its backward written out: the forward,
the K runs' losses and the gradients into the flat buffer in about a dozen kernels, without
autograd's graph (some 15 nodes a step, each a few microseconds of the engine's own bookkeeping:
on a digits MLP a quarter of a group's forward and backward). The gradients are autograd's
(softmax minus the smoothed one-hot target over the batch size, then the layers' transposes),
summed in another order: float32 rounding apart (tests/unit/test_fused_relu_ce.py). Any other
activation, a loss with L1 or mixed precision takes autograd's way (`FusedGroup`)."""

from __future__ import annotations

import torch
from torch import nn

from optlab.training.fused.stacked import StackedMLP


def relu_stack(stack: StackedMLP) -> bool:
    """Whether `stack` is [Flatten] (Linear, ReLU)* Linear: what `relu_ce_step` computes."""
    items = list(stack.layers)
    if items and items[0] == "flatten":
        items = items[1:]
    if len(items) % 2 == 0:
        return False
    return all(isinstance(item, tuple) if i % 2 == 0 else type(item) is nn.ReLU for i, item in enumerate(items))


@torch.no_grad()
def relu_ce_step(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss and backward of one batch for every run: each run's mean loss ([K]) and
    its logits ([K, B, C], as `StackedMLP.forward` gives them); the gradients are written into
    `stack.grad` (no zeroing needed: every segment is overwritten)."""
    linears = [item for item in stack.layers if isinstance(item, tuple)]
    k = stack.k
    shared = x.flatten(1)  # [B, in]
    b = shared.shape[0]
    inputs = [shared.t().unsqueeze(0).expand(k, -1, -1)]  # each linear's input, [K, in, B]
    h = inputs[0]
    for weight, bias in linears:
        h = torch.bmm(weight, h) if bias is None else torch.baddbmm(bias.unsqueeze(2), weight, h)
        if len(inputs) < len(linears):
            h = h.relu_()
            inputs.append(h)
    logp = torch.log_softmax(h, 1)  # [K, C, B]
    c = logp.shape[1]
    target = y.view(1, 1, b).expand(k, 1, b)
    per_sample = -logp.gather(1, target).squeeze(1)
    if label_smoothing:
        per_sample = (1 - label_smoothing) * per_sample - label_smoothing * logp.mean(1)
    losses = per_sample.mean(1)
    # d(sum of the runs' mean losses)/d logits: (softmax - smoothed one-hot) / B.
    grad = logp.exp()
    if label_smoothing:
        grad.sub_(label_smoothing / c)
    grad.scatter_add_(1, target, torch.full((k, 1, b), -(1 - label_smoothing), device=grad.device))
    grad.div_(b)
    grads = stack.pieces_of_grad
    for index in range(len(linears) - 1, -1, -1):
        weight, bias = linears[index]
        gw, gb = grads[index]
        torch.bmm(grad, inputs[index].transpose(1, 2), out=gw) if gw.is_contiguous() else gw.copy_(
            torch.bmm(grad, inputs[index].transpose(1, 2)))
        if gb is not None:
            torch.sum(grad, 2, out=gb) if gb.is_contiguous() else gb.copy_(grad.sum(2))
        if index:
            grad = torch.bmm(weight.transpose(1, 2), grad).mul_(inputs[index] > 0)
    return losses, h.transpose(1, 2)
