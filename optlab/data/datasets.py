"""Load a dataset as preloaded tensors with a deterministic train/validation/test split.

Everything lives in memory as one tensor per split (no DataLoader, no per-sample transforms):
the datasets here are small enough, and it keeps every run's data pipeline identical.

Three kinds of dataset entries (see `optlab.builtins`): the catalog's (`catalog` in the
entry's extra: `target(cfg) -> DatasetBundle`), optlab's file readers (`file`:
`target(cfg) -> ArrayData`) and plugin loaders (`loader(**data.options)` -> a mapping of
arrays, checked by `optlab.data.plugins`). The last two share `bundle_from_arrays`.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import importlib.util
import os
import pickle
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import numpy as np
import platformdirs
import torch

from optlab import registry
from optlab.data.bundle import (
    ArrayData,
    DatasetBundle,
    bundle_from_arrays,
    check_sizes,
    fingerprint,
    split_pool,
)
from optlab.data.catalog import CATALOG, DatasetInfo
from optlab.data.files import files_signature
from optlab.data.plugins import arrays_from_loader
from optlab.errors import DatasetUnavailable, PresetError
from optlab.spec import DataConfig

__all__ = ["DatasetBundle", "describe_loaded", "load_dataset"]

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
# describe_loaded: validation asks for every run of a preset; a handful of datasets per process.
_DESCRIBED: OrderedDict[tuple[str, tuple[tuple[str, int, int], ...]], DatasetInfo] = OrderedDict()
_DESCRIBED_MAX = 32


def data_cache_dir() -> Path:
    """Where torchvision datasets live by default: $OPTLAB_DATA_DIR, else the per-user cache."""
    env = os.environ.get("OPTLAB_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("optlab")) / "datasets"


def load_dataset(cfg: DataConfig, device: str = "cpu") -> DatasetBundle:
    """Load, split and normalise `cfg.dataset`. Same cfg, same tensors and split_fingerprint."""
    entry = registry.get("dataset", cfg.dataset)
    if entry.extra.get("catalog"):
        catalog_loader = cast("Callable[[DataConfig], DatasetBundle]", entry.factory())
        bundle = catalog_loader(cfg)
    elif entry.extra.get("file"):
        file_reader = cast("Callable[[DataConfig], ArrayData]", entry.factory())
        bundle = bundle_from_arrays(cfg, file_reader(cfg))
    else:
        bundle = bundle_from_arrays(cfg, arrays_from_loader(entry, cfg.options))
    return bundle if torch.device(device).type == "cpu" else bundle.to(device)


def load_catalog_dataset(cfg: DataConfig) -> DatasetBundle:
    """The built-in datasets: scikit-learn's bundled ones and torchvision's."""
    info = CATALOG[cfg.dataset]
    return _load_sklearn(cfg, info) if info.offline else _load_torchvision(cfg, info)


def describe_loaded(cfg: DataConfig) -> DatasetInfo:
    """Facts about a dataset known only from its data: a file reader's own `describe` when it
    has one (an image folder is described without decoding it), else load it and look. Kept
    per process by the config and the files' sizes and modification times, so validating
    every run of a preset reads the data once, and a changed file is read again."""
    key = (cfg.model_dump_json(), files_signature(cfg))
    info = _DESCRIBED.get(key)
    if info is None:
        entry = registry.get("dataset", cfg.dataset)
        describe = entry.extra.get("describe")
        if isinstance(describe, str):
            module, _, attr = describe.partition(":")
            info = getattr(importlib.import_module(module), attr)(cfg)
        else:
            info = load_dataset(cfg).info
        _DESCRIBED[key] = info
        while len(_DESCRIBED) > _DESCRIBED_MAX:
            _DESCRIBED.popitem(last=False)
    _DESCRIBED.move_to_end(key)
    return info


# ---------------------------------------------------------------------------------------------- sklearn


def sklearn_data_file(name: str) -> Path | None:
    """One of scikit-learn's bundled data files, found without importing scikit-learn (which
    costs about half a bare `import torch`); None where this scikit-learn keeps it elsewhere."""
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / "datasets" / "data" / name
        if path.is_file():
            return path
    return None


def read_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`sklearn.datasets.load_digits()`'s data, target and target names: its file, read as it
    reads it (64 pixel columns, then the digit)."""
    path = sklearn_data_file("digits.csv.gz")
    if path is None:
        from sklearn import datasets as skd

        raw = skd.load_digits()
        return np.asarray(raw.data), np.asarray(raw.target), [str(c) for c in raw.target_names]
    with gzip.open(path, mode="rt", encoding="utf-8") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int, copy=False), [str(c) for c in range(10)]


def _load_sklearn(cfg: DataConfig, info: DatasetInfo) -> DatasetBundle:
    if info.name == "digits":
        data, target, class_names = read_digits()
        x = np.asarray(data, dtype=np.float32).reshape(-1, *info.input_shape) / 16.0
        arrays = ArrayData(x_train=x, y_train=target, task=info.task, class_names=class_names)
        return bundle_from_arrays(cfg, arrays, info)
    from sklearn import datasets as skd

    if info.name == "breast-cancer":
        raw = skd.load_breast_cancer()
        x = np.asarray(raw.data, dtype=np.float32)
        class_names = [str(c) for c in raw.target_names]
    elif info.name == "diabetes":
        raw = skd.load_diabetes(scaled=False)
        x = np.asarray(raw.data, dtype=np.float32)
        class_names = []
    else:  # pragma: no cover - guarded by the schema
        raise PresetError(f"unknown offline dataset {info.name!r}")
    arrays = ArrayData(x_train=x, y_train=np.asarray(raw.target), task=info.task, class_names=class_names)
    return bundle_from_arrays(cfg, arrays, info)


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


# `cls`: a torchvision dataset class, whose download attributes differ from class to class
# (mirrors, url, filename, resources): the checker cannot know which one it is.
def _download_urls(cls: Any) -> list[str]:
    if hasattr(cls, "mirrors"):
        return list(cls.mirrors)
    return [cls.url]


def _archives_present(name: str, root: Path, cls: Any) -> bool:
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
    _, n_val, n_test = check_sizes(cfg, info, len(x_pool) + len(x_off), len(x_off))
    train, val = split_pool(cfg, y_pool.numpy(), n_val, stratify=True)
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
        split_fingerprint=fingerprint(info.name, splits),
        split_indices=splits,
    )
