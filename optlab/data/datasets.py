"""Load a dataset as preloaded tensors with a deterministic train/validation/test split.

Everything lives in memory as one tensor per split (no DataLoader, no per-sample transforms):
the datasets here are small enough, and it keeps every run's data pipeline identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import platformdirs
import torch

from optlab import registry
from optlab.data.catalog import CATALOG, DatasetInfo, split_sizes
from optlab.errors import DatasetUnavailable, PresetError
from optlab.spec import DataConfig

IMAGE_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
_TV_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
PROBE_TIMEOUT_S = 3.0


@dataclass
class DatasetBundle:
    """One dataset, split and preprocessed. `split_indices["train"|"val"|"test"]` are the sample
    indices of each split: into the whole dataset for scikit-learn datasets; for torchvision ones
    train/val index the official train split and test the official test split."""

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
        return dataclasses.replace(self, **moved)

    def facts(self) -> dict[str, Any]:
        return {
            "name": self.info.name,
            "task": self.info.task,
            "n_classes": self.info.n_classes,
            "input_shape": list(self.info.input_shape),
            "n_train": len(self.x_train),
            "n_val": len(self.x_val),
            "n_test": len(self.x_test),
            "class_names": list(self.class_names),
        }


def data_cache_dir() -> Path:
    """Where torchvision datasets live by default: $OPTLAB_DATA_DIR, else the per-user cache."""
    env = os.environ.get("OPTLAB_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("optlab")) / "datasets"


def load_dataset(cfg: DataConfig, device: str = "cpu") -> DatasetBundle:
    """Load, split and normalise `cfg.dataset`. Same cfg, same tensors and split_fingerprint."""
    bundle = registry.get("dataset", cfg.dataset).factory()(cfg)
    return bundle if torch.device(device).type == "cpu" else bundle.to(device)


def load_catalog_dataset(cfg: DataConfig) -> DatasetBundle:
    """The built-in datasets: scikit-learn's bundled ones and torchvision's."""
    info = CATALOG[cfg.dataset]
    return _load_sklearn(cfg, info) if info.offline else _load_torchvision(cfg, info)


def describe_loaded(cfg: DataConfig) -> DatasetInfo:
    """Facts about a dataset known only from its data: load it (on the CPU) and look."""
    return load_dataset(cfg).info


# ---------------------------------------------------------------------------------------------- splits


def _sizes(cfg: DataConfig, info: DatasetInfo, n_total: int, n_official_test: int) -> tuple[int, int, int]:
    """catalog.split_sizes applied to the counts actually found on disk (equal for the real files)."""
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


def _carve(
    indices: np.ndarray, n_take: int, labels: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of `indices` into (rest, taken) with len(taken) == n_take, stratified by
    `labels` when given and possible."""
    seed %= 2**32
    if n_take <= 0:
        return np.random.RandomState(seed).permutation(indices), indices[:0]
    from sklearn.model_selection import train_test_split

    if labels is not None:
        try:
            rest, taken = train_test_split(indices, test_size=n_take, random_state=seed, stratify=labels)
            return np.asarray(rest), np.asarray(taken)
        except ValueError:  # too few samples per class for a stratified split
            pass
    rest, taken = train_test_split(indices, test_size=n_take, random_state=seed)
    return np.asarray(rest), np.asarray(taken)


def _split(cfg: DataConfig, y_pool: np.ndarray, n_val: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    pool = np.arange(len(y_pool))
    train, val = _carve(pool, n_val, y_pool if stratify else None, cfg.split_seed)
    if cfg.train_limit is not None:
        train = train[: cfg.train_limit]
    return train, val


def _fingerprint(name: str, splits: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(name.encode())
    for key in ("train", "val", "test"):
        idx = np.ascontiguousarray(splits[key], dtype="<i8")
        h.update(f"|{key}:{len(idx)}|".encode())
        h.update(idx.tobytes())
    return h.hexdigest()[:16]


def _standardise(train: torch.Tensor, *others: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, ...]:
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


# ---------------------------------------------------------------------------------------------- sklearn


def _load_sklearn(cfg: DataConfig, info: DatasetInfo) -> DatasetBundle:
    from sklearn import datasets as skd

    if info.name == "digits":
        raw = skd.load_digits()
        x = np.asarray(raw.data, dtype=np.float32).reshape(-1, *info.input_shape) / 16.0
        class_names = [str(c) for c in raw.target_names]
    elif info.name == "breast-cancer":
        raw = skd.load_breast_cancer()
        x = np.asarray(raw.data, dtype=np.float32)
        class_names = [str(c) for c in raw.target_names]
    elif info.name == "diabetes":
        raw = skd.load_diabetes(scaled=False)
        x = np.asarray(raw.data, dtype=np.float32)
        class_names = []
    else:  # pragma: no cover - guarded by the schema
        raise PresetError(f"unknown offline dataset {info.name!r}")
    y = np.asarray(raw.target)
    classify = info.task != "regression"

    _, n_val, n_test = _sizes(cfg, info, len(x), 0)
    everything = np.arange(len(x))
    pool, test = _carve(everything, n_test, y if classify else None, cfg.split_seed)
    if cfg.test_limit is not None:
        test = test[: cfg.test_limit]
    train_p, val_p = _split(cfg, y[pool], n_val, classify)
    splits = {"train": pool[train_p], "val": pool[val_p], "test": test}

    xs = [torch.from_numpy(x[splits[k]]) for k in ("train", "val", "test")]
    if classify:
        ys = [torch.from_numpy(y[splits[k]].astype(np.int64)) for k in ("train", "val", "test")]
    else:
        ys = [torch.from_numpy(y[splits[k]].astype(np.float32)) for k in ("train", "val", "test")]

    target_mean, target_std = 0.0, 1.0
    if cfg.normalize:
        xs = list(_standardise(*xs, dim=None if info.name == "digits" else 0))
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
        class_names=class_names,
        target_mean=target_mean,
        target_std=target_std,
        split_fingerprint=_fingerprint(info.name, splits),
        split_indices=splits,
    )


# ---------------------------------------------------------------------------------------------- torchvision


def expected_files(name: str, root: Path) -> list[Path]:
    """The files torchvision needs for `name` under `root`."""
    if name == "cifar10":
        return [root / "cifar-10-batches-py" / f for f in _CIFAR_FILES]
    return [root / _TV_CLASS[name] / "raw" / f for f in _MNIST_FILES]


def _unavailable(name: str, root: Path, reason: str) -> DatasetUnavailable:
    files = "\n".join(f"  {p}" for p in expected_files(name, root))
    return DatasetUnavailable(
        f"Dataset {name!r} is not available in {root}: {reason}.\n"
        f"Expected files:\n{files}\n"
        "To get them, either:\n"
        "  - run once with network access and data.download=true (the download is automatic), or\n"
        "  - put the files there, or point data.root at a folder that has them (--set data.root=/path)."
    )


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the host of `url` accepts a TCP connection within `timeout` (DNS included)."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)  # getaddrinfo ignores the socket timeout
    return bool(result and result[0])


def _download_urls(cls: type) -> list[str]:
    if hasattr(cls, "mirrors"):
        return list(cls.mirrors)
    return [cls.url]


def _archives_present(name: str, root: Path, cls: type) -> bool:
    """The compressed downloads are already there (torchvision then only extracts them)."""
    if name == "cifar10":
        return (root / cls.filename).is_file()
    return all((root / _TV_CLASS[name] / "raw" / f).is_file() for f, _ in cls.resources)


_READ_ERRORS = (RuntimeError, OSError, ValueError, AssertionError, EOFError, KeyError, pickle.UnpicklingError)


def _open_torchvision(name: str, root: Path, download: bool) -> tuple[Any, Any]:
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TV_CLASS[name])
    try:
        return cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    except _READ_ERRORS as err:
        if all(p.is_file() for p in expected_files(name, root)):
            raise _unavailable(name, root, f"its files could not be read ({_short(err)})") from None
        if not download:
            reason = "its files are missing and downloading is off (data.download=false)"
            raise _unavailable(name, root, reason) from None
    if not _archives_present(name, root, cls) and not any(_reachable(u) for u in _download_urls(cls)):
        raise _unavailable(name, root, "its files are missing and the download server cannot be reached")
    try:
        # torchvision prints download progress; stdout belongs to data (e.g. `--format json`).
        with contextlib.redirect_stdout(sys.stderr):
            return cls(str(root), train=True, download=True), cls(str(root), train=False, download=False)
    except _READ_ERRORS as err:
        raise _unavailable(name, root, f"the download failed ({_short(err)})") from None


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def _load_torchvision(cfg: DataConfig, info: DatasetInfo) -> DatasetBundle:
    root = Path(cfg.root).expanduser() if cfg.root else data_cache_dir()
    train_ds, test_ds = _open_torchvision(info.name, root, cfg.download)

    def arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(ds.data))
        if x.ndim == 4:  # CIFAR: N x H x W x C
            x = x.permute(0, 3, 1, 2)
        elif x.ndim == 3:
            x = x.unsqueeze(1)
        return x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    x_pool, y_pool = arrays(train_ds)
    x_off, y_off = arrays(test_ds)
    _, n_val, n_test = _sizes(cfg, info, len(x_pool) + len(x_off), len(x_off))
    train, val = _split(cfg, y_pool.numpy(), n_val, stratify=True)
    test = np.arange(min(n_test, cfg.test_limit or n_test))
    splits = {"train": train, "val": val, "test": test}

    def prep(x_u8: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        x = x_u8[torch.from_numpy(idx)].to(torch.float32).div_(255.0)
        if cfg.normalize:
            mean, std = IMAGE_STATS[info.name]
            x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
        return x.contiguous()

    class_names = [str(i) for i in range(10)] if info.name == "mnist" else [str(c) for c in test_ds.classes]
    return DatasetBundle(
        info=info,
        x_train=prep(x_pool, train),
        y_train=y_pool[torch.from_numpy(train)],
        x_val=prep(x_pool, val),
        y_val=y_pool[torch.from_numpy(val)],
        x_test=prep(x_off, test),
        y_test=y_off[torch.from_numpy(test)],
        class_names=class_names,
        split_fingerprint=_fingerprint(info.name, splits),
        split_indices=splits,
    )
