"""scikit-learn's seeded `train_test_split` (plain and stratified) as numpy alone.

Every run directory's split, and its `split_fingerprint`, were made by scikit-learn 1.x's
`ShuffleSplit` and `StratifiedShuffleSplit` with an integer `random_state`. Importing
scikit-learn costs about half a bare `import torch` (it pulls in scipy), so the same draws are
made here, step for step: same `RandomState` calls in the same order, same tie-breaking.
`tests/unit/test_split.py` checks them against scikit-learn itself.
"""

from __future__ import annotations

import numpy as np


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """sklearn.utils.extmath._approximate_mode: per-class draws, ties broken by `rng`."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        values = np.sort(np.unique(remainder))[::-1]
        for value in values:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def _stratified(labels: np.ndarray, n_train: int, n_test: int, rng: np.random.RandomState) -> tuple[list, list]:
    classes, y_indices, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    n_classes = classes.shape[0]
    if np.min(class_counts) < 2:
        raise ValueError("the least populated class has only 1 member")
    if n_train < n_classes or n_test < n_classes:
        raise ValueError(f"each part needs at least one sample of each of the {n_classes} classes")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list = []
    test: list = []
    for i in range(n_classes):
        permutation = rng.permutation(class_counts[i])
        perm_indices_class_i = class_indices[i].take(permutation, mode="clip")
        train.extend(perm_indices_class_i[: n_i[i]])
        test.extend(perm_indices_class_i[n_i[i] : n_i[i] + t_i[i]])
    return train, test


def train_test_split(
    indices: np.ndarray, n_test: int, seed: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`sklearn.model_selection.train_test_split(indices, test_size=n_test, random_state=seed,
    stratify=stratify)`, each part sorted. Raises ValueError where scikit-learn does."""
    n_samples = len(indices)
    if not 0 < n_test < n_samples:
        raise ValueError(f"test_size={n_test} should be positive and smaller than the number of samples {n_samples}")
    n_train = n_samples - n_test
    rng = np.random.RandomState(seed)
    if stratify is not None:
        train, test = _stratified(np.asarray(stratify), n_train, n_test, rng)
        train_idx, test_idx = np.asarray(train, dtype=np.intp), np.asarray(test, dtype=np.intp)
    else:
        permutation = rng.permutation(n_samples)
        test_idx, train_idx = permutation[:n_test], permutation[n_test : n_test + n_train]
    return np.sort(indices[train_idx]), np.sort(indices[test_idx])
