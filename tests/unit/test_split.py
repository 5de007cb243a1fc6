"""optlab's numpy split makes exactly scikit-learn's draws (run directories' splits and
fingerprints were made by scikit-learn, and stay the same), and digits reads as sklearn reads it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split as sk_split

from optlab.data.datasets import read_digits
from optlab.data.split import train_test_split


def sklearn_parts(indices: np.ndarray, n_test: int, seed: int, labels: np.ndarray | None) -> tuple | None:
    try:
        rest, taken = sk_split(indices, test_size=n_test, random_state=seed, stratify=labels)
    except ValueError:
        return None
    return np.sort(rest), np.sort(taken)


def ours(indices: np.ndarray, n_test: int, seed: int, labels: np.ndarray | None) -> tuple | None:
    try:
        return train_test_split(indices, n_test, seed, stratify=labels)
    except ValueError:
        return None


@settings(max_examples=300, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=2, max_size=80),
    take=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
    stratified=st.booleans(),
    offset=st.integers(0, 50),
)
def test_the_same_parts_as_scikit_learn(labels: list[int], take: float, seed: int, stratified: bool, offset: int) -> None:
    y = np.asarray(labels)
    indices = np.arange(len(y)) * 2 + offset  # carve passes increasing indices, not always 0..n-1
    n_test = max(1, min(len(y) - 1, round(take * len(y))))
    expected = sklearn_parts(indices, n_test, seed, y if stratified else None)
    got = ours(indices, n_test, seed, y if stratified else None)
    if expected is None:
        assert got is None  # the same refusals: carve then falls back to a plain split
    else:
        assert got is not None
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_digits_stratified_split_matches_scikit_learn(seed: int) -> None:
    _, target, _ = read_digits()
    indices = np.arange(len(target))
    for n_test in (1, 10, 360, 1000):
        expected = sklearn_parts(indices, n_test, seed, target)
        got = ours(indices, n_test, seed, target)
        assert (got is None) == (expected is None)
        if got is not None and expected is not None:
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])


def test_digits_read_without_scikit_learn_equal_its_loader() -> None:
    data, target, names = read_digits()
    raw = load_digits()
    np.testing.assert_array_equal(data, raw.data)
    np.testing.assert_array_equal(target, raw.target)
    assert target.dtype == raw.target.dtype
    assert names == [str(c) for c in raw.target_names]
