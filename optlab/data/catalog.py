"""Static facts about each dataset: known without loading it for the built-ins (so validation
stays cheap), read from the data itself for file and plugin datasets (`describe_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from optlab.spec import DataConfig

Task = Literal["multiclass", "binary", "regression"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: Task
    n_classes: int  # 0 for regression
    input_shape: tuple[int, ...]  # per sample, channels first for images
    n_total: int  # samples before any split (train + official test)
    n_official_test: int  # 0 when there is no official test split
    offline: bool  # bundled with scikit-learn, no download needed


CATALOG: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "multiclass", 10, (1, 8, 8), 1797, 0, True),
    "breast-cancer": DatasetInfo("breast-cancer", "binary", 2, (30,), 569, 0, True),
    "diabetes": DatasetInfo("diabetes", "regression", 0, (10,), 442, 0, True),
    "mnist": DatasetInfo("mnist", "multiclass", 10, (1, 28, 28), 70000, 10000, False),
    "fashion-mnist": DatasetInfo("fashion-mnist", "multiclass", 10, (1, 28, 28), 70000, 10000, False),
    "cifar10": DatasetInfo("cifar10", "multiclass", 10, (3, 32, 32), 60000, 10000, False),
}


def describe_dataset(cfg: DataConfig) -> DatasetInfo:
    """The facts validation needs (task, classes, input shape, sample counts) for `cfg`."""
    if cfg.dataset in CATALOG:
        return CATALOG[cfg.dataset]
    from optlab.data.datasets import describe_loaded

    return describe_loaded(cfg)


def split_sizes(
    info: DatasetInfo,
    test_fraction: float,
    val_fraction: float,
    val_size: int | None,
    train_limit: int | None = None,
) -> tuple[int, int, int]:
    """(train, val, test) sizes exactly as `optlab.data` will cut them."""
    if info.n_official_test:
        n_test = info.n_official_test
        n_pool = info.n_total - n_test
    else:
        n_test = max(1, round(info.n_total * test_fraction))
        n_pool = info.n_total - n_test
    n_val = val_size if val_size is not None else round(n_pool * val_fraction)
    n_train = n_pool - n_val
    if train_limit is not None:
        n_train = min(n_train, train_limit)
    return n_train, n_val, n_test
