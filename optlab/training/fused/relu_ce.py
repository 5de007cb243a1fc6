"""A stacked ReLU MLP's step under cross-entropy with its backward written out: the forward,
the K runs' losses and the gradients into the flat buffer in about a dozen kernels, without
autograd's graph (some 15 nodes a step, each a few microseconds of the engine's own bookkeeping:
on a digits MLP a quarter of a group's forward and backward). The gradients are autograd's
(softmax minus the smoothed one-hot target over the batch size, then the layers' transposes),
summed in another order: float32 rounding apart (tests/unit/test_fused_relu_ce.py). Dropout
after a ReLU is one more multiply each way: forward by the run's mask (`dropout_mask`), and
backward by the same mask before the ReLU's, as autograd's MulBackward then ThresholdBackward.
Any other activation, a loss with L1 or mixed precision takes autograd's way (`FusedGroup`)."""

from __future__ import annotations

import torch
from torch import nn

from optlab.training.fused.stacked import StackedMLP, dropout_mask

STRIDED_OUT_MIN = 4096  # elements of one run's weight gradient (relu_ce_step: measured, 1 thread)


def _hidden_dropout(stack: StackedMLP) -> list[float] | None:
    """Each hidden layer's dropout probability (0: none) when `stack` is
    [Flatten] (Linear, ReLU, [Dropout])* Linear, what `relu_ce_step` computes; else None."""
    items = list(stack.layers)
    if items and items[0] == "flatten":
        items = items[1:]
    rates: list[float] = []
    while len(items) > 1:
        if not isinstance(items[0], tuple) or type(items[1]) is not nn.ReLU:
            return None
        dropout = items[2] if len(items) > 2 and type(items[2]) is nn.Dropout else None
        rates.append(float(dropout.p) if dropout is not None else 0.0)
        items = items[3:] if dropout is not None else items[2:]
    return rates if len(items) == 1 and isinstance(items[0], tuple) else None


def relu_stack(stack: StackedMLP) -> bool:
    """Whether `relu_ce_step` computes `stack`'s step."""
    return _hidden_dropout(stack) is not None


@torch.no_grad()
def relu_ce_step(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, label_smoothing: float,
                 generators: list[torch.Generator] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss and backward of one batch for every run: each run's mean loss ([K]) and
    its logits ([K, B, C], as `StackedMLP.forward` gives them); the gradients are written into
    `stack.grad` (no zeroing needed: every segment is overwritten). Dropout draws from
    `generators` (run k's in k), as `StackedMLP.forward` does."""
    linears = [item for item in stack.layers if isinstance(item, tuple)]
    rates = _hidden_dropout(stack) or []
    masks: list[torch.Tensor | None] = []
    k = stack.k
    shared = x.flatten(1)  # [B, in]
    b = shared.shape[0]
    inputs = [shared.t().unsqueeze(0).expand(k, -1, -1)]  # each linear's input, [K, in, B]
    h = inputs[0]
    for weight, bias in linears:
        h = torch.bmm(weight, h) if bias is None else torch.baddbmm(bias.unsqueeze(2), weight, h)
        if len(inputs) < len(linears):
            h = h.relu_()
            p = rates[len(inputs) - 1]
            mask = dropout_mask(h, p, generators) if generators is not None and p > 0 else None
            if mask is not None:
                h = h * mask
            masks.append(mask)
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
        if gw.is_contiguous() or gw[0].numel() >= STRIDED_OUT_MIN:
            # Into the flat buffer's view even where it is strided (a run's stride is its row's
            # length): torch's CPU bmm then loops over the runs, cheaper than a temporary and its
            # copy for a large layer (digits' 128x64: 123 against 149 us), dearer for a small one.
            torch.bmm(grad, inputs[index].transpose(1, 2), out=gw)
        else:
            gw.copy_(torch.bmm(grad, inputs[index].transpose(1, 2)))
        if gb is not None:
            torch.sum(grad, 2, out=gb) if gb.is_contiguous() else gb.copy_(grad.sum(2))
        if index:
            grad = torch.bmm(weight.transpose(1, 2), grad)
            mask = masks[index - 1]
            if mask is not None:  # where a unit was dropped the product is 0 either way
                grad.mul_(mask)
            # ReLU's backward as autograd computes it (from its output): a multiply by the
            # boolean `> 0` would be 5-8x slower on CPU (a dtype promotion per element).
            grad = torch.ops.aten.threshold_backward(grad, inputs[index], 0)
    return losses, h.transpose(1, 2)
