"""ROC-AUC, MSE, MAE and R² computed as scikit-learn computes them, with numpy alone.

Importing scikit-learn costs a fresh process about half a bare `import torch` (it pulls in
scipy), and every classification run's test metrics need ROC-AUC once, at its end. These follow
scikit-learn 1.x step for step (`roc_curve` with `drop_intermediate`, `auc`'s trapezoid, the
one-vs-rest macro average, `r2_score`'s finite forms), so the numbers stay scikit-learn's;
`tests/unit/test_metrics.py` checks them against scikit-learn itself.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# numpy < 2 names it trapz (looked up by name: each numpy's stubs know only one of the two)
_trapezoid: Callable[..., float] = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009


def binary_roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """`roc_auc_score` of 0/1 labels (both present) and positive-class scores."""
    order = np.argsort(score, kind="mergesort")[::-1]
    score = score[order]
    positive = (np.asarray(y_true)[order] == 1).astype(np.float64)
    # np.concatenate, not np.r_: the same arrays, without np.r_'s parsing of its index (a third
    # of this function's time on a test set of hundreds of samples).
    thresholds = np.concatenate([np.flatnonzero(np.diff(score)), [positive.size - 1]])
    tps = np.cumsum(positive, dtype=np.float64)[thresholds]
    fps = 1 + thresholds.astype(np.float64) - tps
    if fps.shape[0] > 2:  # drop_intermediate: points on a straight line add no area
        keep = np.flatnonzero(np.concatenate([[True], np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), [True]]))
        fps, tps = fps[keep], tps[keep]
    tps, fps = np.concatenate([[0.0], tps]), np.concatenate([[0.0], fps])
    if fps[-1] <= 0 or tps[-1] <= 0:
        raise ValueError("Only one class is present in y_true. ROC AUC score is not defined in that case.")
    return float(_trapezoid(tps / tps[-1], fps / fps[-1]))


def ovr_macro_roc_auc(y_true: np.ndarray, prob: np.ndarray) -> float:
    """`roc_auc_score(multi_class="ovr", average="macro", labels=0..C-1)` of (N, C) probabilities."""
    if not np.allclose(1, prob.sum(axis=1)):
        raise ValueError(
            "Target scores need to be probabilities for multiclass "
            "roc_auc, i.e. they should sum up to 1.0 over classes"
        )
    scores = np.array([binary_roc_auc((y_true == c).astype(int), prob[:, c]) for c in range(prob.shape[1])])
    return float(np.average(scores))


def _columns(y: np.ndarray) -> np.ndarray:
    # scikit-learn reduces over axis 0 of (N, outputs): the same summation order as it.
    return y.reshape(-1, 1) if y.ndim == 1 else y


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    errors = np.average((_columns(y_true) - _columns(y_pred)) ** 2, axis=0)
    return float(np.average(errors))


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    errors = np.average(np.abs(_columns(y_pred) - _columns(y_true)), axis=0)
    return float(np.average(errors))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """NaN for fewer than two samples; 1.0 for a perfect fit of a constant, 0.0 for an imperfect one."""
    yt, yp = _columns(y_true), _columns(y_pred)
    if yt.shape[0] < 2:
        return float("nan")
    numerator = np.asarray(np.sum((yt - yp) ** 2, axis=0, dtype=np.float64))
    denominator = np.asarray(np.sum((yt - np.average(yt, axis=0)) ** 2, axis=0, dtype=np.float64))
    scores = np.ones(yt.shape[1])
    valid = (denominator != 0) & (numerator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return float(np.average(scores))
