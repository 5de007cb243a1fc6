"""Tiny, valid, learnable stand-ins for the MNIST/FashionMNIST/CIFAR-10 files, for offline tests.

Images are class-dependent: a bright block whose position depends on the label, on a noisy
background, so a small model learns them within an epoch or two.

    from tests.idx_fixtures import write_mnist_idx, write_cifar10_batches, allow_fake_cifar10

    write_mnist_idx(tmp_path, "FashionMNIST", n_train=300, n_test=100)
    cfg = DataConfig(dataset="fashion-mnist", root=str(tmp_path), download=False)
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Balanced labels 0..9 in random order."""
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)


def _images(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """N x size x size uint8: noise in [0, 60), plus a block in [200, 256) placed by the label."""
    n = len(labels)
    img = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    bh, bw = size // 3, size // 5
    for i, k in enumerate(labels):
        r = 2 + (int(k) // 5) * (size // 2)
        c = (int(k) % 5) * bw
        img[i, r : r + bh, c : c + bw] = rng.integers(200, 256, size=(bh, bw), dtype=np.uint8)
    return img


def write_mnist_idx(
    root: Path | str, folder: str = "MNIST", n_train: int = 600, n_test: int = 100, seed: int = 0
) -> Path:
    """Write `<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte` (uncompressed IDX,
    big-endian, magic 2051 for images and 2049 for labels), read as-is by torchvision's real
    MNIST (folder="MNIST") or FashionMNIST (folder="FashionMNIST") with download=False.
    Returns the raw folder."""
    if folder not in ("MNIST", "FashionMNIST"):
        raise ValueError(f"folder must be 'MNIST' or 'FashionMNIST', got {folder!r}")
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = _labels(n, rng)
        images = _images(labels, 28, rng)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels.tobytes())
    return raw


def _cifar_meta_bytes() -> bytes:
    """Byte-exact copy of the real `batches.meta` (a Python 2 protocol-2 pickle; md5
    5ff9c542aee3614f3951f8cda6e48888), so torchvision's own md5 check on it passes."""
    out = bytearray(b"\x80\x02}q\x01(")
    memo = 2

    def string(s: str) -> bytes:
        nonlocal memo
        b = s.encode()
        memo += 1
        return b"U" + bytes([len(b)]) + b + b"q" + bytes([memo - 1])

    out += string("num_cases_per_batch") + b"M" + struct.pack("<H", 10000)
    out += string("label_names") + b"]q" + bytes([memo]) + b"("
    memo += 1
    for name in CIFAR10_CLASSES:
        out += string(name)
    out += b"e" + string("num_vis") + b"M" + struct.pack("<H", 3072) + b"u."
    return bytes(out)


def write_cifar10_batches(root: Path | str, n_train: int = 500, n_test: int = 100, seed: int = 0) -> Path:
    """Write `<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}` in CIFAR's
    python-pickle format (n_train samples spread over the five batches). Returns that folder.

    torchvision checks the md5 of every batch file, which fake data cannot match: tests using
    this must monkeypatch the check, e.g. with `allow_fake_cifar10(monkeypatch)`, which does
    `monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)`.
    (`batches.meta` is byte-exact, so its separate md5 check passes unpatched.)

    Each image gets the label's block (bright in one colour channel chosen by the label)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(n: int, label: str) -> dict[str, Any]:
        labels = _labels(n, rng)
        grey = _images(labels, 32, rng)  # N x 32 x 32
        rgb = np.stack([grey, grey, grey], axis=1)  # N x 3 x 32 x 32 (CIFAR stores channels first)
        for i, k in enumerate(labels):
            rgb[i, (int(k) + 1) % 3] //= 3  # dim one channel: the colour also depends on the label
        return {
            "batch_label": label,
            "labels": [int(k) for k in labels],
            "data": rgb.reshape(n, 3 * 32 * 32),
            "filenames": [f"fake_{label.replace(' ', '_')}_{i}.png" for i in range(n)],
        }

    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(len(part), f"training batch {i} of 5"), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, "testing batch 1 of 1"), f, protocol=2)
    (folder / "batches.meta").write_bytes(_cifar_meta_bytes())
    return folder


def allow_fake_cifar10(monkeypatch: Any) -> None:
    """Make torchvision's CIFAR10 accept the files of `write_cifar10_batches` (skip the md5 check)."""
    import torchvision

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
