"""A fusion group's validation at an epoch's end: one stacked forward over the validation set
for every live member, instead of one forward per run. Each run gets the `EvalResult` that
`evaluate` gives it on its own (loss summed per batch as the batch mean times its size, in
float64; accuracy from the first largest logit), within float32 rounding: the stacked matmuls
sum in another order. Multiclass cross-entropy only; other tasks and losses evaluate per run."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from optlab.training.evaluation import EvalResult
from optlab.training.fused.stacked import StackedMLP
from optlab.training.trainer import Trainer


def can_validate(lead: Trainer) -> bool:
    return lead.task == "multiclass" and lead.spec.loss == "cross_entropy"


def validate(stack: StackedMLP, lead: Trainer, live: list[int]) -> dict[int, EvalResult | None]:
    """Run k's validation result for every k in `live` (None without a validation split)."""
    x, y = lead.data.x_val, lead.data.y_val
    n = x.shape[0]
    if n == 0:
        return dict.fromkeys(live)
    k, bs = stack.k, lead.spec.eval_batch_size
    loss_sum = torch.zeros(k, dtype=torch.float64, device=x.device)
    correct = torch.zeros(k, dtype=torch.int64, device=x.device)
    with torch.inference_mode():
        for start in range(0, n, bs):
            xb, yb = x[start : start + bs], y[start : start + bs]
            with lead.autocast():
                out = stack.forward(xb)
            logits = out.transpose(1, 2).float()  # [K, C, B]: classes in the middle
            per_sample = F.cross_entropy(logits, yb.expand(k, -1), label_smoothing=lead.spec.label_smoothing,
                                         reduction="none")
            loss_sum += per_sample.mean(1).double() * xb.shape[0]
            # max(1).indices: the first largest, as argmax, and 7x faster over a middle dim on CPU.
            correct += (logits.max(1).indices == yb).sum(1)
    losses, hits = loss_sum.tolist(), correct.tolist()  # the one host sync
    return {i: EvalResult(losses[i] / n, hits[i] / n, None) for i in live}
