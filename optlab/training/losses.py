"""Losses and the output conventions that go with them.

Targets are stored as the dataset keeps them: int64 class indices for classification, float32
values of shape (N,) for regression. The helpers here hide the shape differences between the
model outputs (N, C), (N, 1) and those targets, so the trainer and evaluation stay generic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# The torch-free rules live apart so preset validation can use them; re-exported here.
from optlab.training.loss_rules import ALLOWED_LOSSES, loss_task_error, n_outputs

__all__ = ["ALLOWED_LOSSES", "build_loss", "loss_task_error", "n_outputs", "predictions", "probabilities"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def _flat(output: Tensor) -> Tensor:
    # (N, 1) -> (N,); reshape rather than squeeze() so a batch of one keeps its batch axis.
    return output.reshape(-1) if output.dim() > 1 and output.shape[-1] == 1 else output


def build_loss(loss: str, task: str, label_smoothing: float = 0.0) -> LossFn:
    """Mean-reduced loss taking the raw model output and the stored targets."""
    problem = loss_task_error(loss, task)
    if problem:
        raise ValueError(problem)
    if label_smoothing and loss != "cross_entropy":
        raise ValueError(f"label_smoothing works only with cross_entropy, not {loss!r}")

    if loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y, label_smoothing=label_smoothing)
    if loss == "bce_with_logits":
        return lambda out, y: F.binary_cross_entropy_with_logits(_flat(out), y.to(out.dtype))
    regression: dict[str, LossFn] = {"mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss}
    fn = regression[loss]
    return lambda out, y: fn(_flat(out), y.to(out.dtype))


def probabilities(output: Tensor, task: str, loss: str) -> Tensor:
    """Multiclass: (N, C) softmax. Binary: positive-class probability (N,).
    Regression: the predicted values (N,)."""
    if task == "multiclass":
        return torch.softmax(output, dim=1)
    if task == "binary":
        # The output width, not only the loss name, decides: both always agree via n_outputs.
        if loss == "bce_with_logits" or output.dim() == 1 or output.shape[-1] == 1:
            return torch.sigmoid(_flat(output))
        return torch.softmax(output, dim=1)[:, 1]
    return _flat(output)


def predictions(output: Tensor, task: str, loss: str) -> Tensor:
    """Class indices (int64, comparable with the targets) or regression values."""
    if task == "multiclass":
        return output.argmax(dim=1)
    if task == "binary":
        # Thresholding the probability (not argmax) keeps predictions consistent with y_prob.
        return (probabilities(output, task, loss) >= 0.5).long()
    return _flat(output)
