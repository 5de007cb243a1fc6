"""optlab's numpy ROC-AUC and regression metrics give scikit-learn's numbers, to the last bit
on these inputs (ties included: scores drawn from a few values)."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from optlab.metrics import sk_parity


@settings(max_examples=200, deadline=None)
@given(labels=st.lists(st.integers(0, 1), min_size=2, max_size=60), seed=st.integers(0, 2**32 - 1),
       levels=st.integers(2, 50))
def test_binary_roc_auc_is_scikit_learns(labels: list[int], seed: int, levels: int) -> None:
    y = np.asarray(labels)
    if len(np.unique(y)) < 2:
        y[0], y[-1] = 0, 1
    score = np.random.default_rng(seed).integers(0, levels, len(y)) / levels
    assert sk_parity.binary_roc_auc(y, score) == skm.roc_auc_score(y, score)


@settings(max_examples=150, deadline=None)
@given(n_classes=st.integers(3, 6), n=st.integers(6, 60), seed=st.integers(0, 2**32 - 1))
def test_one_vs_rest_macro_roc_auc_is_scikit_learns(n_classes: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n)])
    logits = rng.integers(-3, 4, (len(y), n_classes)).astype(np.float64)
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = skm.roc_auc_score(y, prob, multi_class="ovr", average="macro", labels=list(range(n_classes)))
    assert sk_parity.ovr_macro_roc_auc(y, prob) == expected


def test_multiclass_scores_that_are_not_probabilities_are_refused_with_scikit_learns_words() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    scores = np.full((6, 3), 0.5)
    try:
        skm.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=[0, 1, 2])
    except ValueError as exc:
        expected = str(exc)
    try:
        sk_parity.ovr_macro_roc_auc(y, scores)
    except ValueError as exc:
        assert str(exc) == expected
    else:
        raise AssertionError("accepted scores that do not sum to 1")


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 50), seed=st.integers(0, 2**32 - 1), constant=st.booleans(), exact=st.booleans())
def test_regression_metrics_are_scikit_learns(n: int, seed: int, constant: bool, exact: bool) -> None:
    rng = np.random.default_rng(seed)
    y = np.full(n, 1.5) if constant else rng.normal(size=n) * 10
    pred = y.copy() if exact else y + rng.normal(size=n)
    assert sk_parity.mean_squared_error(y, pred) == skm.mean_squared_error(y, pred)
    assert sk_parity.mean_absolute_error(y, pred) == skm.mean_absolute_error(y, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.r2_score(y, pred)
    got = sk_parity.r2_score(y, pred)
    assert got == expected or (np.isnan(got) and np.isnan(expected))
