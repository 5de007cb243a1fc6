"""A dataset as preloaded tensors (`DatasetBundle`), and the one way every dataset given as
arrays becomes one: sklearn's bundled datasets, CSV/NPZ/ImageFolder files and plugin loaders
all go through `bundle_from_arrays` (seeded, stratified split; standardisation with the
training split's statistics).

Order: the splits keep the data's own order. With nothing held out the training set is the
file's order exactly; with a validation or test split carved out, each part keeps the file's
relative order (the carve is seeded and stratified, the result sorted). Shuffling, when a run
wants it, is the trainer's per-epoch permutation, never the data layer's.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optlab.data.catalog import DatasetInfo, Task, split_sizes
from optlab.data.split import train_test_split
from optlab.errors import PresetError
from optlab.spec import DataConfig


@dataclass
class DatasetBundle:
    """One dataset, split and preprocessed. `split_indices["train"|"val"|"test"]` are the sample
    indices of each split: into the whole dataset when it has no official test split; else
    train/val index the official train split and test the official test split. `files` lists
    the files a file-based dataset was read from (name, size, sha256)."""

    info: DatasetInfo
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    target_mean: float = 0.0
    target_std: float = 1.0
    split_fingerprint: str = ""
    split_indices: dict[str, np.ndarray] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    # What to call a dataset read from the user's file or folder: its stem ("houses" for
    # houses.csv), since the reader's name ("csv") says nothing. Display only: not fingerprinted.
    title: str = ""

    _TENSORS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")

    def to(self, device: str | torch.device) -> DatasetBundle:
        """A copy with every tensor on `device` (pinned, non-blocking copies for CUDA)."""
        dev = torch.device(device)
        moved: dict[str, torch.Tensor] = {}
        for name in self._TENSORS:
            t: torch.Tensor = getattr(self, name)
            if dev.type == "cuda" and t.device.type == "cpu":
                t = t.pin_memory()
            moved[name] = t.to(dev, non_blocking=True)
        # Every name in _TENSORS is a tensor field; the checker cannot see which keys `moved` has.
        return dataclasses.replace(self, **moved)  # type: ignore[arg-type]

    def facts(self) -> dict[str, Any]:
        facts = {
            "name": self.info.name,
            "task": self.info.task,
            "n_classes": self.info.n_classes,
            "input_shape": list(self.info.input_shape),
            "n_train": len(self.x_train),
            "n_val": len(self.x_val),
            "n_test": len(self.x_test),
            "class_names": list(self.class_names),
        }
        if self.files:
            facts["files"] = [dict(f) for f in self.files]
        if self.title:
            facts["title"] = self.title
        return facts


@dataclass
class ArrayData:
    """A dataset as numpy arrays before splitting: what file readers and plugin loaders give.
    `x_*` are N x features (tabular) or N x C x H x W (images, channels first); `y_*` are class
    indices 0..K-1 for classification, values for regression."""

    x_train: np.ndarray
    y_train: np.ndarray
    task: Task
    class_names: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    files: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- splits


def check_sizes(cfg: DataConfig, info: DatasetInfo, n_total: int, n_official_test: int) -> tuple[int, int, int]:
    """catalog.split_sizes applied to the counts actually found (equal to the catalog's for the
    real files of the built-ins)."""
    actual = dataclasses.replace(info, n_total=n_total, n_official_test=n_official_test)
    n_train, n_val, n_test = split_sizes(actual, cfg.test_fraction, cfg.val_fraction, cfg.val_size)
    if n_train <= 0:
        what = (
            f"data.val_size={cfg.val_size}"
            if cfg.val_size is not None
            else f"data.val_fraction={cfg.val_fraction}"
        )
        raise PresetError(
            f"{what} leaves no training samples for {info.name!r}: only {n_train + n_val} samples "
            "remain for training and validation together"
        )
    return n_train, n_val, n_test


def carve(indices: np.ndarray, n_take: int, labels: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the increasing `indices` into (rest, taken) with len(taken) == n_take,
    stratified by `labels` when given and possible. Both parts stay in increasing order (the
    data's own); taking nothing returns `indices` as they are."""
    if n_take <= 0:
        return indices, indices[:0]
    seed %= 2**32
    if labels is not None:
        try:
            return train_test_split(indices, n_take, seed, stratify=labels)
        except ValueError:  # too few samples per class for a stratified split
            pass
    return train_test_split(indices, n_take, seed)


def split_pool(cfg: DataConfig, y_pool: np.ndarray, n_val: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into the pool; `train_limit` keeps the first training samples."""
    pool = np.arange(len(y_pool))
    train, val = carve(pool, n_val, y_pool if stratify else None, cfg.split_seed)
    if cfg.train_limit is not None:
        train = train[: cfg.train_limit]
    return train, val


def fingerprint(name: str, splits: dict[str, np.ndarray], files: list[dict[str, Any]] | None = None) -> str:
    """Which samples went where, and (for file datasets) the bytes they came from."""
    h = hashlib.sha256(name.encode())
    for key in ("train", "val", "test"):
        idx = np.ascontiguousarray(splits[key], dtype="<i8")
        h.update(f"|{key}:{len(idx)}|".encode())
        h.update(idx.tobytes())
    for f in files or []:
        h.update(f"|file:{f['name']}:{f['size']}:{f['sha256']}".encode())
    return h.hexdigest()[:16]


def standardise(train: torch.Tensor, *others: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, ...]:
    """Standardise with the training split's statistics (per feature when dim=0, scalar when None)."""
    if len(train) == 0:
        return (train, *others)
    if dim is None:
        mean, std = train.mean(), train.std(unbiased=False)
        std = std if std > 0 else torch.ones_like(std)
    else:
        mean, std = train.mean(dim=dim), train.std(dim=dim, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple((t - mean) / std for t in (train, *others))


# ---------------------------------------------------------------------------------------------- arrays


def bundle_from_arrays(cfg: DataConfig, data: ArrayData, info: DatasetInfo | None = None) -> DatasetBundle:
    """Split, standardise and tensor-ise `data`. Without a test split of its own, the test set
    is carved from everything first (stratified for classification), then validation from the
    rest; with one, validation comes from the training arrays and the test set is kept whole.
    Tabular features are standardised per feature, images with one scalar mean and std."""
    x, y = data.x_train, data.y_train
    classify = data.task != "regression"
    n_test_given = len(data.x_test) if data.x_test is not None else 0
    if info is None:
        info = DatasetInfo(
            name=cfg.dataset,
            task=data.task,
            n_classes=len(data.class_names) if classify else 0,
            input_shape=tuple(int(d) for d in x.shape[1:]),
            n_total=len(x) + n_test_given,
            n_official_test=n_test_given,
            offline=True,
        )
    _, n_val, n_test = check_sizes(cfg, info, len(x) + n_test_given, n_test_given)
    if data.x_test is not None:
        pool, test = np.arange(len(x)), np.arange(n_test_given)
        x_test, y_test = data.x_test, data.y_test
    else:
        pool, test = carve(np.arange(len(x)), n_test, y if classify else None, cfg.split_seed)
        x_test, y_test = x, y
    if cfg.test_limit is not None:
        test = test[: cfg.test_limit]
    train_p, val_p = split_pool(cfg, y[pool], n_val, classify)
    splits = {"train": pool[train_p], "val": pool[val_p], "test": test}

    def part(arr: np.ndarray, idx: np.ndarray, dtype: Any) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr[idx], dtype=dtype))

    xs = [part(x, splits["train"], np.float32), part(x, splits["val"], np.float32), part(x_test, test, np.float32)]
    y_dtype = np.int64 if classify else np.float32
    assert y_test is not None  # given with x_test, or the training arrays themselves
    ys = [part(y, splits["train"], y_dtype), part(y, splits["val"], y_dtype), part(y_test, test, y_dtype)]

    target_mean, target_std = 0.0, 1.0
    if cfg.normalize:
        xs = list(standardise(*xs, dim=0 if x.ndim == 2 else None))
        if not classify and len(ys[0]):
            target_mean = float(ys[0].double().mean())
            target_std = float(ys[0].double().std(unbiased=False)) or 1.0
            ys = [(t - target_mean) / target_std for t in ys]

    return DatasetBundle(
        info=info,
        x_train=xs[0],
        y_train=ys[0],
        x_val=xs[1],
        y_val=ys[1],
        x_test=xs[2],
        y_test=ys[2],
        class_names=list(data.class_names),
        target_mean=target_mean,
        target_std=target_std,
        split_fingerprint=fingerprint(info.name, splits, data.files),
        split_indices=splits,
        files=list(data.files),
        title=Path(cfg.path).stem if cfg.path and data.files else "",
    )
