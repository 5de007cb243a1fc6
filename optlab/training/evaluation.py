"""Evaluation in large batches under inference mode, and the final test metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from optlab.data.datasets import DatasetBundle
from optlab.metrics import classification_metrics, regression_metrics
from optlab.training.losses import predictions, probabilities


@dataclass
class EvalResult:
    loss: float
    accuracy: float | None
    output: torch.Tensor | None  # raw model output, kept only when asked for
    # Regression: root mean squared error in the target's own units, whatever loss the run
    # trains with, so runs with MSE, L1 and SmoothL1 losses can be compared on one number.
    rmse: float | None = None


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    task: str,
    loss_name: str,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager[object]],
    keep_output: bool = False,
    target_std: float = 1.0,
) -> EvalResult | None:
    """Mean loss and accuracy (RMSE for regression, in the units `target_std` restores) over
    (x, y); one host sync at the end."""
    n = x.shape[0]
    if n == 0:
        return None
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    squared = torch.zeros((), device=x.device, dtype=torch.float64)
    outputs = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            with autocast():
                out = model(xb)
            out = out.float()
            loss_sum += loss_fn(out, yb).double() * xb.shape[0]
            if task != "regression":
                correct += (predictions(out, task, loss_name) == yb).sum()
            else:
                pred = probabilities(out, task, loss_name).reshape(yb.shape)
                squared += (pred.double() - yb.double()).square().sum()
            if keep_output:
                outputs.append(out)
    model.train(was_training)
    accuracy = None if task == "regression" else correct.item() / n
    rmse = (squared.item() / n) ** 0.5 * target_std if task == "regression" else None
    return EvalResult(loss_sum.item() / n, accuracy, torch.cat(outputs) if keep_output else None, rmse)


def recompute_batchnorm(
    model: nn.Module, batches: Iterable[torch.Tensor], autocast: Callable[[], AbstractContextManager[object]]
) -> None:
    """Reset every batch-norm layer's running statistics and recompute them over `batches`
    with the current weights, as an equal-weight average (momentum None), leaving every other
    layer (dropout) in eval mode. For optimizers whose evaluated weights are not the trained
    ones (schedule-free): the statistics gathered while training describe the other weights."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for xb in batches:
            if xb.shape[0] > 1:  # train-mode batch norm cannot normalise a single sample
                with autocast():
                    model(xb)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


def test_report(
    output: torch.Tensor, data: DatasetBundle, loss: float, loss_name: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """Test metrics (equal to scikit-learn's) and the arrays written to predictions.npz."""
    task = data.info.task
    y_true = data.y_test.detach().cpu().numpy()
    if task == "regression":
        scale, shift = data.target_std, data.target_mean
        pred = probabilities(output, task, loss_name).float().cpu().numpy() * scale + shift
        y_true = y_true * scale + shift
        metrics = regression_metrics(y_true, pred, loss=loss)
        return metrics, {"y_true": y_true, "y_prob": pred, "y_pred": pred}
    prob = probabilities(output, task, loss_name).float().cpu().numpy()
    pred = predictions(output, task, loss_name).cpu().numpy()
    metrics = classification_metrics(
        y_true, prob, data.info.n_classes, loss=loss, class_names=data.class_names or None
    )
    return metrics, {"y_true": y_true, "y_prob": prob, "y_pred": pred}
