"""Parity of optlab.metrics with scikit-learn ("honest numbers")."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from optlab.metrics import classification_metrics, predicted_labels, regression_metrics

REL = 1e-12


def _random_probs(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    logits = rng.normal(size=(n, c))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _assert_json(d: dict) -> None:
    json.dumps(d, allow_nan=False)


def _assert_multiclass_parity(y: np.ndarray, p: np.ndarray, c: int, m: dict) -> None:
    labels = list(range(c))
    yp = p.argmax(axis=1)
    assert m["average"] == "macro"
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, yp), rel=REL)
    prec, rec, f1, _ = precision_recall_fscore_support(y, yp, labels=labels, average="macro", zero_division=0)
    assert m["precision"] == pytest.approx(prec, rel=REL, abs=1e-15)
    assert m["recall"] == pytest.approx(rec, rel=REL, abs=1e-15)
    assert m["f1"] == pytest.approx(f1, rel=REL, abs=1e-15)
    cm = confusion_matrix(y, yp, labels=labels)
    assert m["confusion_matrix"] == cm.tolist()
    pp, pr, pf, ps = precision_recall_fscore_support(y, yp, labels=labels, average=None, zero_division=0)
    assert m["per_class"]["precision"] == pytest.approx(pp.tolist(), rel=REL, abs=1e-15)
    assert m["per_class"]["recall"] == pytest.approx(pr.tolist(), rel=REL, abs=1e-15)
    assert m["per_class"]["f1"] == pytest.approx(pf.tolist(), rel=REL, abs=1e-15)
    assert m["per_class"]["support"] == ps.tolist()
    spec = _hand_specificity(cm)
    assert m["per_class"]["specificity"] == pytest.approx(spec, rel=REL, abs=1e-15)
    assert m["specificity"] == pytest.approx(sum(spec) / c, rel=REL, abs=1e-15)
    _assert_json(m)


def _hand_specificity(cm: np.ndarray) -> list[float]:
    out = []
    total = int(cm.sum())
    for k in range(cm.shape[0]):
        tp = int(cm[k, k])
        fp = int(cm[:, k].sum()) - tp
        fn = int(cm[k, :].sum()) - tp
        tn = total - tp - fp - fn
        out.append(tn / (tn + fp) if tn + fp else 0.0)
    return out


# ---------------------------------------------------------------- multiclass


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("c", [3, 5, 10])
def test_multiclass_random_parity(seed: int, c: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    y = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])
    p = _random_probs(rng, n, c)
    m = classification_metrics(y, p, c, loss=0.5)
    _assert_multiclass_parity(y, p, c, m)
    assert m["loss"] == 0.5
    assert m["roc_auc"] == pytest.approx(
        roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(c))), rel=REL
    )
    assert m["roc_auc_note"] is None
    assert m["per_class"]["names"] == [str(i) for i in range(c)]


def test_multiclass_class_never_predicted() -> None:
    rng = np.random.default_rng(7)
    c, n = 4, 200
    y = rng.integers(0, c, n)
    p = _random_probs(rng, n, c)
    p[:, 2] = 0.0  # class 2 can never win the argmax
    p /= p.sum(axis=1, keepdims=True)
    m = classification_metrics(y, p, c)
    assert 2 not in set(p.argmax(axis=1).tolist())
    _assert_multiclass_parity(y, p, c, m)
    assert m["per_class"]["precision"][2] == 0.0
    assert [row[2] for row in m["confusion_matrix"]] == [0, 0, 0, 0]
    assert m["roc_auc"] is not None


def test_multiclass_class_absent_from_y_true() -> None:
    rng = np.random.default_rng(11)
    c, n = 4, 200
    y = rng.choice([0, 1, 3], size=n)
    p = _random_probs(rng, n, c)
    m = classification_metrics(y, p, c)
    _assert_multiclass_parity(y, p, c, m)
    assert m["roc_auc"] is None
    assert "2" in m["roc_auc_note"] and "absent" in m["roc_auc_note"]
    assert m["confusion_matrix"][2] == [0, 0, 0, 0]
    assert m["per_class"]["support"][2] == 0


def test_multiclass_single_class_present() -> None:
    rng = np.random.default_rng(3)
    y = np.full(50, 1)
    p = _random_probs(rng, 50, 3)
    m = classification_metrics(y, p, 3)
    _assert_multiclass_parity(y, p, 3, m)
    assert m["roc_auc"] is None
    assert "one class" in m["roc_auc_note"]


def test_multiclass_perfect_predictions() -> None:
    c = 5
    y = np.repeat(np.arange(c), 10)
    p = np.full((len(y), c), 0.05)
    p[np.arange(len(y)), y] = 0.8
    m = classification_metrics(y, p, c)
    _assert_multiclass_parity(y, p, c, m)
    for key in ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc"):
        assert m[key] == 1.0
    assert m["confusion_matrix"] == np.diag(np.full(c, 10)).tolist()


def test_multiclass_all_one_class_predicted() -> None:
    rng = np.random.default_rng(5)
    c, n = 3, 90
    y = np.repeat(np.arange(c), n // c)
    p = np.tile([0.2, 0.7, 0.1], (n, 1)) + rng.uniform(0, 1e-3, size=(n, c))
    p /= p.sum(axis=1, keepdims=True)
    m = classification_metrics(y, p, c)
    assert set(p.argmax(axis=1).tolist()) == {1}
    _assert_multiclass_parity(y, p, c, m)
    assert m["per_class"]["specificity"] == pytest.approx([1.0, 0.0, 1.0])


def test_class_names_and_validation() -> None:
    y = np.array([0, 1, 2, 1])
    p = _random_probs(np.random.default_rng(0), 4, 3)
    m = classification_metrics(y, p, 3, class_names=["cat", "dog", "eel"])
    assert m["per_class"]["names"] == ["cat", "dog", "eel"]
    with pytest.raises(ValueError):
        classification_metrics(y, p, 3, class_names=["a", "b"])
    with pytest.raises(ValueError):
        classification_metrics(y, p[:, :2], 3)
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1, 3, 1]), p, 3)
    with pytest.raises(ValueError):
        classification_metrics(y, np.full((4, 3), np.nan), 3)
    with pytest.raises(ValueError):
        classification_metrics(y[:0], p[:0], 3)


# ---------------------------------------------------------------- binary


def _assert_binary_parity(y: np.ndarray, pos: np.ndarray, m: dict) -> None:
    yp = (pos >= 0.5).astype(int)
    assert m["average"] == "binary"
    assert m["accuracy"] == pytest.approx(accuracy_score(y, yp), rel=REL)
    assert m["precision"] == pytest.approx(precision_score(y, yp, zero_division=0), rel=REL, abs=1e-15)
    assert m["recall"] == pytest.approx(recall_score(y, yp, zero_division=0), rel=REL, abs=1e-15)
    assert m["f1"] == pytest.approx(f1_score(y, yp, zero_division=0), rel=REL, abs=1e-15)
    cm = confusion_matrix(y, yp, labels=[0, 1])
    tn, fp, _fn, _tp = cm.ravel()  # genuinely binary: 2x2
    assert m["specificity"] == pytest.approx(tn / (tn + fp) if tn + fp else 0.0, rel=REL, abs=1e-15)
    assert m["confusion_matrix"] == cm.tolist()
    pp, pr, pf, ps = precision_recall_fscore_support(y, yp, labels=[0, 1], average=None, zero_division=0)
    assert m["per_class"]["precision"] == pytest.approx(pp.tolist(), rel=REL, abs=1e-15)
    assert m["per_class"]["recall"] == pytest.approx(pr.tolist(), rel=REL, abs=1e-15)
    assert m["per_class"]["f1"] == pytest.approx(pf.tolist(), rel=REL, abs=1e-15)
    assert m["per_class"]["support"] == ps.tolist()
    assert m["per_class"]["specificity"] == pytest.approx(_hand_specificity(cm), rel=REL, abs=1e-15)
    if len(np.unique(y)) == 2:
        assert m["roc_auc"] == pytest.approx(roc_auc_score(y, pos), rel=REL)
    else:
        assert m["roc_auc"] is None and m["roc_auc_note"]
    _assert_json(m)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_1d_and_2col(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.integers(0, 2, n)
    pos = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    pos[:20] = 0.5  # threshold ties go to the positive class
    m1 = classification_metrics(y, pos, 2)
    _assert_binary_parity(y, pos, m1)
    m2 = classification_metrics(y, np.column_stack([1 - pos, pos]), 2)
    assert m2 == m1
    assert predicted_labels(pos, 2).tolist() == (pos >= 0.5).astype(int).tolist()
    assert predicted_labels(np.column_stack([1 - pos, pos]), 2).tolist() == predicted_labels(pos, 2).tolist()


def test_binary_perfect_and_all_one_class() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    perfect = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    m = classification_metrics(y, perfect, 2)
    _assert_binary_parity(y, perfect, m)
    assert (
        m["accuracy"] == m["precision"] == m["recall"] == m["f1"] == m["specificity"] == m["roc_auc"] == 1.0
    )
    all_neg = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.45])
    m = classification_metrics(y, all_neg, 2)
    _assert_binary_parity(y, all_neg, m)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["specificity"] == 1.0
    assert m["roc_auc"] == 1.0  # ranking is still perfect; AUC comes from probabilities
    all_pos = all_neg + 0.5
    m = classification_metrics(y, all_pos, 2)
    _assert_binary_parity(y, all_pos, m)
    assert m["specificity"] == 0.0
    only_neg_true = np.zeros(6, dtype=int)
    m = classification_metrics(only_neg_true, perfect, 2)
    _assert_binary_parity(only_neg_true, perfect, m)
    assert m["roc_auc"] is None


# ---------------------------------------------------------------- ROC-AUC from probabilities


def test_roc_auc_uses_probabilities_not_labels_binary() -> None:
    y = np.array([0, 0, 1, 1])
    pos = np.array([0.1, 0.2, 0.3, 0.4])  # every label predicted 0, ranking perfect
    label_auc = roc_auc_score(y, (pos >= 0.5).astype(int))
    prob_auc = roc_auc_score(y, pos)
    assert label_auc != prob_auc
    assert classification_metrics(y, pos, 2)["roc_auc"] == prob_auc == 1.0


def test_roc_auc_uses_probabilities_not_labels_multiclass() -> None:
    rng = np.random.default_rng(42)
    c, n = 4, 200
    y = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])
    p = _random_probs(rng, n, c)
    labels = list(range(c))
    onehot = np.eye(c)[p.argmax(axis=1)]
    label_auc = roc_auc_score(y, onehot, multi_class="ovr", average="macro", labels=labels)
    prob_auc = roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
    assert not math.isclose(label_auc, prob_auc)
    assert classification_metrics(y, p, c)["roc_auc"] == pytest.approx(prob_auc, rel=REL)


# ---------------------------------------------------------------- regression


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_parity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=250)
    pred = y + rng.normal(scale=0.3, size=250)
    m = regression_metrics(y, pred, loss=0.1)
    assert m["loss"] == 0.1
    assert m["n"] == 250
    assert m["mse"] == pytest.approx(mean_squared_error(y, pred), rel=REL)
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, pred)), rel=REL)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=REL)
    assert m["r2"] == pytest.approx(r2_score(y, pred), rel=REL)
    _assert_json(m)
    # (N, 1) predictions against (N,) targets, as a regression head emits
    assert regression_metrics(y, pred[:, None]) == {**m, "loss": None}


def test_regression_edge_cases() -> None:
    m = regression_metrics(np.array([1.0]), np.array([2.0]))
    assert m["r2"] is None and m["mse"] == 1.0
    _assert_json(m)
    with pytest.raises(ValueError):
        regression_metrics(np.array([1.0, 2.0]), np.array([1.0, np.inf]))
    with pytest.raises(ValueError):
        regression_metrics(np.zeros(3), np.zeros(4))


# ---------------------------------------------------------------- property test


@settings(max_examples=150, deadline=None)
@given(
    c=st.integers(min_value=2, max_value=6),
    n=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_property_parity(c: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    probs = _random_probs(rng, n, c)
    # coarse rounding creates argmax / threshold ties
    probs = np.round(probs, 1)
    probs = probs + 1e-9
    probs /= probs.sum(axis=1, keepdims=True)
    labels = list(range(c))
    if c == 2:
        m = classification_metrics(y, probs[:, 1], c)
        yp = (probs[:, 1] >= 0.5).astype(int)
        avg = "binary"
    else:
        m = classification_metrics(y, probs, c)
        yp = probs.argmax(axis=1)
        avg = "macro"
    assert predicted_labels(probs, c).tolist() == yp.tolist()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, yp), rel=REL)
    prec, rec, f1, _ = precision_recall_fscore_support(y, yp, labels=labels, average=avg, zero_division=0)
    assert m["precision"] == pytest.approx(prec, rel=REL, abs=1e-15)
    assert m["recall"] == pytest.approx(rec, rel=REL, abs=1e-15)
    assert m["f1"] == pytest.approx(f1, rel=REL, abs=1e-15)
    assert m["confusion_matrix"] == confusion_matrix(y, yp, labels=labels).tolist()
    if m["roc_auc"] is None:
        assert m["roc_auc_note"]
    _assert_json(m)
