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

ALLOWED_LOSSES: dict[str, tuple[str, ...]] = {
    "multiclass": ("cross_entropy",),
    "binary": ("cross_entropy", "bce_with_logits"),
    "regression": ("mse", "l1", "smooth_l1"),
}

LossFn = Callable[[Tensor, Tensor], Tensor]


def n_outputs(task: str, n_classes: int, loss: str) -> int:
    """Width of the model's last layer for this task and loss."""
    if task == "multiclass":
        return n_classes
    if task == "binary":
        return 1 if loss == "bce_with_logits" else 2
    if task == "regression":
        return 1
    raise ValueError(f"unknown task {task!r}")


def loss_task_error(loss: str, task: str, dataset: str | None = None) -> str | None:
    """Why `loss` cannot train a `task` model, or None when it can."""
    allowed = ALLOWED_LOSSES.get(task)
    if allowed is None:
        return f"unknown task {task!r}"
    if loss in allowed:
        return None
    where = f"the {task} dataset {dataset!r}" if dataset else f"a {task} task"
    return f"loss {loss!r} does not fit {where}; allowed: {', '.join(allowed)}"


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
