"""Test-set metrics with scikit-learn parity ("honest numbers").

Precision, recall, F1 and specificity are derived from the confusion matrix with numpy and match
scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)`` exactly. ROC-AUC always comes
from probabilities as :func:`sklearn.metrics.roc_auc_score` computes it (``optlab.metrics.sk_parity``,
numpy alone: importing scikit-learn would cost every run's process seconds), never from argmax labels. A multiclass
confusion matrix is never unpacked as if it were binary. Every returned value is a plain Python
``int``/``float``/``str``/``list``/``None`` so the dicts are JSON-serialisable; NaN never appears.
"""

from __future__ import annotations

import warnings

import numpy as np

from optlab.metrics.sk_parity import (
    binary_roc_auc,
    mean_absolute_error,
    mean_squared_error,
    ovr_macro_roc_auc,
    r2_score,
)

__all__ = ["classification_metrics", "predicted_labels", "regression_metrics"]


def _check_n_classes(n_classes: int) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    return int(n_classes)


def _prob_array(y_prob: np.ndarray, n_classes: int) -> np.ndarray:
    """Validate ``y_prob``; return (N,) positive-class probabilities (binary) or (N, C) (multiclass)."""
    p = np.asarray(y_prob, dtype=np.float64)
    if n_classes == 2:
        if p.ndim == 2 and p.shape[1] == 2:
            p = p[:, 1]
        elif p.ndim != 1:
            raise ValueError(f"binary y_prob must have shape (N,) or (N, 2), got {p.shape}")
    elif p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"y_prob must have shape (N, {n_classes}), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("y_prob contains NaN or infinite values; metrics would be meaningless")
    return p


def predicted_labels(y_prob: np.ndarray, n_classes: int) -> np.ndarray:
    """Hard labels: argmax over (N, C); for binary, positive-class probability >= 0.5."""
    n_classes = _check_n_classes(n_classes)
    p = _prob_array(y_prob, n_classes)
    if n_classes == 2:
        return (p >= 0.5).astype(np.int64)
    return np.argmax(p, axis=1).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num/den with 0 where den == 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _roc_auc(y_true: np.ndarray, p: np.ndarray, n_classes: int) -> tuple[float | None, str | None]:
    present = np.unique(y_true)
    if present.size < 2:
        return None, (f"ROC-AUC undefined: only one class ({int(present[0])}) is present in y_true")
    if n_classes > 2 and present.size < n_classes:
        missing = sorted(set(range(n_classes)) - {int(c) for c in present})
        return None, (
            f"ROC-AUC undefined: class(es) {missing} absent from y_true, so one-vs-rest AUC "
            "cannot be computed for them"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auc = binary_roc_auc(y_true, p) if n_classes == 2 else ovr_macro_roc_auc(y_true, p)
    except ValueError as exc:
        return None, f"ROC-AUC undefined: {exc}"
    auc = float(auc)
    if not np.isfinite(auc):
        return None, "ROC-AUC undefined: scikit-learn returned NaN"
    return auc, None


def classification_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    n_classes: int,
    loss: float | None = None,
    class_names: list[str] | None = None,
) -> dict:
    """Classification metrics from integer targets and predicted probabilities.

    ``y_prob`` is (N, C) for multiclass; for binary (``n_classes == 2``) it is the positive-class
    probability (N,) or an (N, 2) array whose column 1 is used.
    """
    n_classes = _check_n_classes(n_classes)
    yt = np.asarray(y_true)
    if yt.ndim != 1:
        raise ValueError(f"y_true must be 1-D class indices, got shape {yt.shape}")
    integral = np.issubdtype(yt.dtype, np.integer) or (
        np.issubdtype(yt.dtype, np.floating) and np.all(np.isfinite(yt)) and np.all(yt == np.round(yt))
    )
    if not integral:
        raise ValueError("y_true must contain integer class indices")
    yt = yt.astype(np.int64)
    p = _prob_array(y_prob, n_classes)
    n = int(yt.shape[0])
    if n == 0:
        raise ValueError("cannot compute metrics on an empty set")
    if p.shape[0] != n:
        raise ValueError(f"y_true has {n} samples but y_prob has {p.shape[0]}")
    if yt.min() < 0 or yt.max() >= n_classes:
        raise ValueError(f"y_true values must lie in 0..{n_classes - 1}")
    if class_names is None:
        names = [str(i) for i in range(n_classes)]
    else:
        names = [str(c) for c in class_names]
        if len(names) != n_classes:
            raise ValueError(f"class_names has {len(names)} entries, expected {n_classes}")

    yp = predicted_labels(p, n_classes)
    cm = np.bincount(yt * n_classes + yp, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm)
    pred_sum = cm.sum(axis=0)
    true_sum = cm.sum(axis=1)
    fp = pred_sum - tp
    tn = n - true_sum - fp
    precision = _safe_div(tp, pred_sum)
    recall = _safe_div(tp, true_sum)
    f1 = _safe_div(2.0 * tp, true_sum.astype(np.float64) + pred_sum)
    specificity = _safe_div(tn, tn + fp)

    if n_classes == 2:
        average = "binary"
        agg = {
            "precision": float(precision[1]),
            "recall": float(recall[1]),
            "f1": float(f1[1]),
            "specificity": float(specificity[1]),
        }
    else:
        average = "macro"
        agg = {
            "precision": float(np.mean(precision)),
            "recall": float(np.mean(recall)),
            "f1": float(np.mean(f1)),
            "specificity": float(np.mean(specificity)),
        }

    auc, note = _roc_auc(yt, p, n_classes)
    return {
        "loss": None if loss is None else float(loss),
        "accuracy": float(np.trace(cm) / n),
        **agg,
        "roc_auc": auc,
        "roc_auc_note": note,
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "specificity": specificity.tolist(),
            "support": [int(s) for s in true_sum],
            "names": names,
        },
        "average": average,
        "n": n,
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, loss: float | None = None) -> dict:
    """MSE, RMSE, MAE and R² identical to scikit-learn's (uniform average over outputs)."""
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.shape != yp.shape:
        if np.squeeze(yt).shape == np.squeeze(yp).shape and np.squeeze(yt).ndim == 1:  # (N, 1) vs (N,)
            yt, yp = yt.reshape(-1), yp.reshape(-1)
        else:
            raise ValueError(f"y_true shape {yt.shape} does not match y_pred shape {yp.shape}")
    if yt.shape[0] == 0:
        raise ValueError("cannot compute metrics on an empty set")
    if not (np.all(np.isfinite(yt)) and np.all(np.isfinite(yp))):
        raise ValueError("y_true/y_pred contain NaN or infinite values; metrics would be meaningless")
    n = int(yt.shape[0])
    mse = float(mean_squared_error(yt, yp))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R² is undefined (NaN + warning) for fewer than two samples
        r2 = float(r2_score(yt, yp))
    return {
        "loss": None if loss is None else float(loss),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(yt, yp)),
        "r2": r2 if np.isfinite(r2) else None,
        "n": n,
    }
