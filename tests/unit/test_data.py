"""optlab.data.datasets: splits, sizes, normalisation, torchvision files, clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from sklearn import datasets as skd

from optlab.data import datasets as ds
from optlab.data.catalog import CATALOG, split_sizes
from optlab.data.datasets import DatasetBundle, data_cache_dir, load_dataset
from optlab.errors import DatasetUnavailable, PresetError
from optlab.spec import DataConfig
from tests.idx_fixtures import allow_fake_cifar10, write_cifar10_batches, write_mnist_idx

OFFLINE = ["digits", "breast-cancer", "diabetes"]
SPLITS = ("train", "val", "test")


def sizes(b: DatasetBundle) -> tuple[int, int, int]:
    return len(b.x_train), len(b.x_val), len(b.x_test)


def check_shapes(b: DatasetBundle) -> None:
    info = b.info
    for x, y in ((b.x_train, b.y_train), (b.x_val, b.y_val), (b.x_test, b.y_test)):
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == info.input_shape
        assert y.shape == (len(x),)
        if info.task == "regression":
            assert y.dtype == torch.float32
        else:
            assert y.dtype == torch.int64
            assert len(y) == 0 or 0 <= int(y.min()) <= int(y.max()) < info.n_classes
    assert torch.isfinite(b.x_train).all()


# ---------------------------------------------------------------------------------------------- offline


@pytest.mark.parametrize("name", OFFLINE)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"val_fraction": 0.0},
        {"val_size": 37, "test_fraction": 0.3},
        {"train_limit": 50, "val_fraction": 0.1},
        {"train_limit": 100_000},
    ],
)
def test_offline_shapes_and_sizes_match_catalog(name: str, kw: dict) -> None:
    cfg = DataConfig(dataset=name, **kw)
    b = load_dataset(cfg)
    check_shapes(b)
    info = CATALOG[name]
    assert sizes(b) == split_sizes(info, cfg.test_fraction, cfg.val_fraction, cfg.val_size, cfg.train_limit)
    facts = b.facts()
    assert facts["name"] == name and facts["task"] == info.task and facts["n_classes"] == info.n_classes
    assert (facts["n_train"], facts["n_val"], facts["n_test"]) == sizes(b)
    assert facts["input_shape"] == list(info.input_shape)
    assert len(facts["class_names"]) == info.n_classes


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_split_is_a_partition(name: str) -> None:
    b = load_dataset(DataConfig(dataset=name))
    parts = [set(b.split_indices[k].tolist()) for k in SPLITS]
    assert sum(len(p) for p in parts) == sum(len(b.split_indices[k]) for k in SPLITS)  # no duplicates
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(CATALOG[name].n_total))


@pytest.mark.parametrize("name", OFFLINE)
def test_deterministic_and_seed_sensitive(name: str) -> None:
    a, b = load_dataset(DataConfig(dataset=name)), load_dataset(DataConfig(dataset=name))
    for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, attr), getattr(b, attr))
    assert a.split_fingerprint == b.split_fingerprint
    assert len(a.split_fingerprint) == 16 and int(a.split_fingerprint, 16) >= 0
    other = load_dataset(DataConfig(dataset=name, split_seed=1))
    assert other.split_fingerprint != a.split_fingerprint
    # the fingerprint depends on the split only, not on preprocessing
    assert load_dataset(DataConfig(dataset=name, normalize=False)).split_fingerprint == a.split_fingerprint


def test_classification_splits_are_stratified() -> None:
    b = load_dataset(DataConfig(dataset="breast-cancer"))
    share = [float(y.float().mean()) for y in (b.y_train, b.y_val, b.y_test)]
    assert max(share) - min(share) < 0.02
    d = load_dataset(DataConfig(dataset="digits"))
    counts = torch.bincount(d.y_test, minlength=10)
    assert int(counts.max() - counts.min()) <= 2


def test_digits_scalar_standardisation_uses_train_only() -> None:
    b = load_dataset(DataConfig(dataset="digits"))
    assert abs(float(b.x_train.mean())) < 1e-4 and abs(float(b.x_train.std(unbiased=False)) - 1) < 1e-4
    raw = load_dataset(DataConfig(dataset="digits", normalize=False))
    pixels = skd.load_digits().data / 16.0
    expected = torch.tensor(pixels[raw.split_indices["test"]], dtype=torch.float32).reshape(-1, 1, 8, 8)
    assert torch.allclose(raw.x_test, expected)
    assert float(raw.x_train.min()) >= 0.0 and float(raw.x_train.max()) <= 1.0
    mean, std = raw.x_train.mean(), raw.x_train.std(unbiased=False)
    assert torch.allclose(b.x_test, (raw.x_test - mean) / std, atol=1e-5)


def test_breast_cancer_per_feature_standardisation_uses_train_only() -> None:
    b = load_dataset(DataConfig(dataset="breast-cancer"))
    assert torch.allclose(b.x_train.mean(0), torch.zeros(30), atol=1e-4)
    assert torch.allclose(b.x_train.std(0, unbiased=False), torch.ones(30), atol=1e-3)
    assert not torch.allclose(b.x_test.mean(0), torch.zeros(30), atol=1e-3)  # not its own statistics
    raw = load_dataset(DataConfig(dataset="breast-cancer", normalize=False))
    data = skd.load_breast_cancer().data
    assert torch.allclose(raw.x_val, torch.tensor(data[raw.split_indices["val"]], dtype=torch.float32))
    assert b.class_names == ["malignant", "benign"]


def test_diabetes_targets_standardised_with_train_stats() -> None:
    b = load_dataset(DataConfig(dataset="diabetes"))
    assert b.class_names == []
    assert abs(float(b.y_train.mean())) < 1e-4 and abs(float(b.y_train.std(unbiased=False)) - 1) < 1e-4
    assert torch.allclose(b.x_train.mean(0), torch.zeros(10), atol=1e-4)
    target = skd.load_diabetes().target
    assert b.target_mean == pytest.approx(target[b.split_indices["train"]].mean(), rel=1e-6)
    assert b.target_std == pytest.approx(target[b.split_indices["train"]].std(), rel=1e-6)
    back = b.y_test * b.target_std + b.target_mean
    assert torch.allclose(back, torch.tensor(target[b.split_indices["test"]], dtype=torch.float32), atol=1e-3)
    raw = load_dataset(DataConfig(dataset="diabetes", normalize=False))
    assert (raw.target_mean, raw.target_std) == (0.0, 1.0)
    assert torch.allclose(raw.y_train, torch.tensor(target[raw.split_indices["train"]], dtype=torch.float32))


def test_limits_keep_the_first_samples() -> None:
    full = load_dataset(DataConfig(dataset="digits", normalize=False))
    lim = load_dataset(DataConfig(dataset="digits", normalize=False, train_limit=100, test_limit=25))
    assert sizes(lim) == (100, len(full.x_val), 25)
    assert torch.equal(lim.x_train, full.x_train[:100]) and torch.equal(lim.x_test, full.x_test[:25])
    assert torch.equal(lim.y_val, full.y_val)
    assert lim.split_fingerprint != full.split_fingerprint
    # normalisation statistics come from the training samples actually used
    norm = load_dataset(DataConfig(dataset="digits", train_limit=100, test_limit=25))
    assert abs(float(norm.x_train.mean())) < 1e-4


def test_val_size_too_large_is_a_clear_error() -> None:
    n_pool = CATALOG["digits"].n_total - round(CATALOG["digits"].n_total * 0.2)
    with pytest.raises(PresetError, match="val_size"):
        load_dataset(DataConfig(dataset="digits", val_size=n_pool))


def test_to_and_device_argument() -> None:
    b = load_dataset(DataConfig(dataset="breast-cancer"), device="cpu")
    c = b.to("cpu")
    assert isinstance(c, DatasetBundle) and c.x_train.device.type == "cpu"
    assert torch.equal(c.x_train, b.x_train) and c.split_fingerprint == b.split_fingerprint


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_cuda() -> None:
    b = load_dataset(DataConfig(dataset="digits"), device="cuda")
    assert b.x_train.is_cuda and b.y_test.is_cuda
    assert torch.equal(b.to("cpu").x_train, load_dataset(DataConfig(dataset="digits")).x_train)


def test_data_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPTLAB_DATA_DIR", str(tmp_path / "here"))
    assert data_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("OPTLAB_DATA_DIR")
    assert data_cache_dir().name == "datasets" and "optlab" in str(data_cache_dir())


# ---------------------------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like_from_idx_files(tmp_path: Path, name: str, folder: str) -> None:
    raw = write_mnist_idx(tmp_path, folder, n_train=300, n_test=80)
    cfg = DataConfig(dataset=name, root=str(tmp_path), download=False, normalize=False)
    b = load_dataset(cfg)
    check_shapes(b)
    actual = dataclasses.replace(CATALOG[name], n_total=380, n_official_test=80)
    assert sizes(b) == split_sizes(actual, cfg.test_fraction, cfg.val_fraction, cfg.val_size) == (240, 60, 80)
    pixels = np.frombuffer((raw / "train-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8).reshape(
        -1, 28, 28
    )
    labels = np.frombuffer((raw / "train-labels-idx1-ubyte").read_bytes()[8:], dtype=np.uint8)
    idx = b.split_indices["train"]
    assert torch.equal(b.x_train[:, 0], torch.from_numpy(pixels[idx].astype(np.float32)) / 255)
    assert torch.equal(b.y_train, torch.from_numpy(labels[idx].astype(np.int64)))
    assert float(b.x_train.min()) >= 0.0 and float(b.x_train.max()) <= 1.0
    assert not set(b.split_indices["train"].tolist()) & set(b.split_indices["val"].tolist())
    assert b.split_indices["test"].tolist() == list(range(80))  # official test split, official order
    assert len(b.class_names) == 10

    norm = load_dataset(cfg.model_copy(update={"normalize": True}))
    mean, std = ds.IMAGE_STATS[name]
    assert torch.allclose(norm.x_test, (b.x_test - mean[0]) / std[0], atol=1e-6)
    assert norm.split_fingerprint == b.split_fingerprint


def test_mnist_val_size_and_limits(tmp_path: Path) -> None:
    write_mnist_idx(tmp_path, "MNIST", n_train=200, n_test=50)
    base = {"dataset": "mnist", "root": str(tmp_path), "download": False}
    b = load_dataset(DataConfig(**base, val_size=50))
    assert sizes(b) == (150, 50, 50)
    assert torch.bincount(b.y_val, minlength=10).tolist() == [5] * 10  # stratified
    lim = load_dataset(DataConfig(**base, val_size=50, train_limit=40, test_limit=10))
    assert sizes(lim) == (40, 50, 10)
    assert torch.equal(lim.x_train, b.x_train[:40]) and torch.equal(lim.y_test, b.y_test[:10])
    assert torch.equal(load_dataset(DataConfig(**base, val_size=50)).x_val, b.x_val)
    none = load_dataset(DataConfig(**base, val_fraction=0.0))
    assert sizes(none) == (200, 0, 50) and none.x_val.shape == (0, 1, 28, 28)


def test_idx_fixture_is_learnable(tmp_path: Path) -> None:
    """Nearest class mean already separates the fixture's classes: real models will learn them."""
    write_mnist_idx(tmp_path, "MNIST", n_train=300, n_test=100)
    b = load_dataset(DataConfig(dataset="mnist", root=str(tmp_path), download=False))
    flat = b.x_train.flatten(1)
    means = torch.stack([flat[b.y_train == k].mean(0) for k in range(10)])
    pred = torch.cdist(b.x_test.flatten(1), means).argmin(1)
    assert float((pred == b.y_test).float().mean()) > 0.95


def test_cifar10_from_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_cifar10_batches(tmp_path, n_train=120, n_test=30)
    meta_md5 = torchvision.datasets.CIFAR10.meta["md5"]
    assert hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest() == meta_md5  # byte-exact
    allow_fake_cifar10(monkeypatch)
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path), download=False, normalize=False)
    b = load_dataset(cfg)
    check_shapes(b)
    assert sizes(b) == (96, 24, 30)
    assert b.class_names[:2] == ["airplane", "automobile"] and len(b.class_names) == 10
    raw = torchvision.datasets.CIFAR10(str(tmp_path), train=True)
    idx = b.split_indices["val"]
    # HWC uint8 -> CHW float in [0, 1]
    expected = torch.from_numpy(raw.data[idx]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(b.x_val, expected)
    assert b.y_val.tolist() == [raw.targets[i] for i in idx]

    norm = load_dataset(cfg.model_copy(update={"normalize": True}))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in ds.IMAGE_STATS["cifar10"])
    assert torch.allclose(norm.x_train, (b.x_train - mean) / std, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"]),
        (
            "fashion-mnist",
            ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/t10k-images-idx3-ubyte"],
        ),
        ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/data_batch_5", "test_batch"]),
    ],
)
def test_missing_files_without_download(tmp_path: Path, name: str, files: list[str]) -> None:
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(DataConfig(dataset=name, root=str(tmp_path / "empty"), download=False))
    msg = str(err.value)
    assert repr(name) in msg and str(tmp_path / "empty") in msg
    for f in files:
        assert f in msg
    assert "data.root" in msg and "--set data.root=" in msg and "network" in msg


def test_missing_files_and_no_network_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[str] = []
    monkeypatch.setattr(ds, "_reachable", lambda url: probed.append(url) or False)

    def no_download(self: object) -> None:
        raise AssertionError("must not try to download when the server is unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_download)
    with pytest.raises(DatasetUnavailable, match="cannot be reached") as err:
        load_dataset(DataConfig(dataset="fashion-mnist", root=str(tmp_path), download=True))
    assert probed and "FashionMNIST/raw/t10k-labels-idx1-ubyte" in str(err.value)


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "_reachable", lambda url: True)

    def broken(self: object) -> None:
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://x, got:\n<urlopen error>"
        )

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", broken)
    with pytest.raises(DatasetUnavailable, match="download failed") as err:
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path)))
    assert "MNIST/raw/train-labels-idx1-ubyte" in str(err.value)


def test_corrupt_files_are_a_clear_error(tmp_path: Path) -> None:
    raw = write_mnist_idx(tmp_path, "MNIST", n_train=20, n_test=10)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DatasetUnavailable, match="could not be read"):
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path), download=False))


def test_reachable_probe_is_bounded() -> None:
    # a port nothing listens on: refused at once, never a hang
    assert ds._reachable("http://127.0.0.1:9/", timeout=0.5) is False
