"""`[data] dataset = "imagefolder"`: torchvision's ImageFolder layout, preloaded as tensors.

    PATH/cat/1.png, PATH/dog/2.png, ...                       one folder per class, seeded split
    PATH/train/cat/1.png, ..., PATH/test/cat/9.png, ...       train/ (and test/) when present

Unlike torchvision's ImageFolder, hidden entries (a name starting with '.': `.ipynb_checkpoints`,
`.DS_Store`) are never classes or samples. Images are read with Pillow, converted to RGB (or one
grey channel), resized to `image_size` when given (else they must all have one size), and held
as float32 tensors, channels first: the memory this needs is estimated from the image headers
before anything is decoded, and refused past `max_memory`. A header that claims more pixels than
Pillow allows one image is refused unread; validation decodes every image once, as loading will.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optlab.data.bundle import ArrayData
from optlab.data.catalog import DatasetInfo, Task
from optlab.data.files import existing, visible_files
from optlab.errors import PresetError
from optlab.spec import DataConfig

# torchvision's IMG_EXTENSIONS
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Past this many images, results.json lists one record per class folder (its files' names,
# sizes and hashes folded into one sha256) rather than one per file: the fingerprints still
# cover every byte, and the run's documents stay readable.
MAX_LISTED_FILES = 1000


@dataclass
class _Layout:
    root: Path
    classes: list[str]
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]] | None
    shape: tuple[int, int, int]  # C, H, W of every tensor

    @property
    def n_images(self) -> int:
        return len(self.train) + len(self.test or [])


def default_max_memory() -> int | None:
    """A quarter of the physical memory, where the system says how much there is."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return None


def _size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _pixel_limit() -> int:
    """Pillow's own ceiling for one image (about 89 million pixels): past it an image is refused
    from its header, before a byte of it is decoded (a small file can claim a huge picture)."""
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def _unreadable(f: Path, exc: BaseException) -> PresetError:
    return PresetError(f"{f}: not a readable image ({type(exc).__name__}: {exc})")


# What Pillow raises for a file it cannot read: broken headers (SyntaxError, ValueError,
# struct errors, EOFError), truncated data (OSError), a size claim past its limit.
def _image_errors() -> tuple[type[BaseException], ...]:
    import struct

    from PIL import Image

    return (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _header_size(f: Path) -> tuple[int, int]:
    """An image's width and height from its header, refused when it claims more pixels than one
    image may have."""
    import warnings

    from PIL import Image

    hint = "a damaged or hostile file, or a picture to shrink before training"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
            with Image.open(f) as im:  # reads the header only
                size = im.size
    except Image.DecompressionBombError as exc:
        said = str(exc).rstrip(".")
        raise PresetError(f"{f}: its header claims more pixels than one image may have ({said}); {hint}") from None
    except _image_errors() as exc:
        raise _unreadable(f, exc) from None
    if size[0] * size[1] > _pixel_limit():
        raise PresetError(
            f"{f}: its header claims {size[0]}x{size[1]}, more pixels than one image may have "
            f"({_pixel_limit():,}); {hint}"
        )
    return size


def decode_image(f: Path, raw: bytes, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as training will hold it (`mode` "L" or "RGB", resized to `size` = (w, h)),
    the one way validation and loading both open a file."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as opened:
            im = opened.convert(mode)
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(im)
    except _image_errors() as exc:
        raise _unreadable(f, exc) from None


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return [f for f in visible_files(folder) if f.suffix.lower() in IMAGE_EXTENSIONS]


def _scan(cfg: DataConfig) -> _Layout:
    root = existing(cfg.path, "path", folder=True)
    split = (root / "train").is_dir()
    train_dir = root / "train" if split else root
    test_dir = root / "test" if split and (root / "test").is_dir() else None
    classes = _class_dirs(train_dir)
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise PresetError(
            f"{train_dir}: expected one sub-folder per class (at least two), found {found}"
        )
    train: list[tuple[Path, int]] = []
    for k, name in enumerate(classes):
        files = _images(train_dir / name)
        if not files:
            raise PresetError(f"{train_dir / name}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        train.extend((f, k) for f in files)
    test: list[tuple[Path, int]] | None = None
    if test_dir is not None:
        strangers = [c for c in _class_dirs(test_dir) if c not in classes]
        if strangers:
            raise PresetError(f"{test_dir / strangers[0]}: a class the training folder {train_dir} does not have")
        test = [(f, k) for k, name in enumerate(classes) if (test_dir / name).is_dir() for f in _images(test_dir / name)]
        if not test:
            raise PresetError(f"{test_dir}: no images in its class folders")

    channels = 1 if cfg.grayscale else 3
    sizes: dict[tuple[int, int], Path] = {}
    for f, _ in train + (test or []):
        sizes.setdefault(_header_size(f), f)
        if len(sizes) > 1 and cfg.image_size is None:
            (a, fa), (b, fb) = sizes.items()
            raise PresetError(
                f"{root}: images differ in size ({fa} is {a[0]}x{a[1]}, {fb} is {b[0]}x{b[1]}): "
                "set data.image_size to resize them"
            )
    if cfg.image_size is not None:
        h, w = (cfg.image_size, cfg.image_size) if isinstance(cfg.image_size, int) else cfg.image_size
    else:
        (w, h), _ = next(iter(sizes.items()))
    layout = _Layout(root, classes, train, test, (channels, h, w))
    _check_memory(cfg, layout)
    return layout


def _check_memory(cfg: DataConfig, layout: _Layout) -> None:
    c, h, w = layout.shape
    need = layout.n_images * c * h * w * 4
    # Validation parsed a "2GiB" into bytes: a str is no longer possible here.
    limit = cfg.max_memory if isinstance(cfg.max_memory, int) else default_max_memory()
    if limit is not None and need > limit:
        said = "data.max_memory" if cfg.max_memory is not None else "a quarter of the RAM (data.max_memory's default)"
        raise PresetError(
            f"{layout.root}: {layout.n_images} images of {c}x{h}x{w} need {_size_text(need)} as float32 tensors, "
            f"more than {said} = {_size_text(limit)}: set data.image_size smaller, or data.max_memory higher"
        )


def describe_imagefolder(cfg: DataConfig) -> DatasetInfo:
    """The facts validation needs, from the folder names and image headers; then every image is
    decoded as loading will decode it, one at a time and kept nowhere, so that a truncated or
    damaged file is a preset error before any run directory exists."""
    layout = _scan(cfg)
    c, h, w = layout.shape
    for f, _ in layout.train + (layout.test or []):
        decode_image(f, f.read_bytes(), "L" if c == 1 else "RGB", (w, h))
    n_test = len(layout.test or [])
    return DatasetInfo(
        name=cfg.dataset,
        task="binary" if len(layout.classes) == 2 else "multiclass",
        n_classes=len(layout.classes),
        input_shape=layout.shape,
        n_total=layout.n_images,
        n_official_test=n_test,
        offline=True,
    )


def read_imagefolder(cfg: DataConfig) -> ArrayData:
    layout = _scan(cfg)
    c, h, w = layout.shape
    mode = "L" if c == 1 else "RGB"
    records: list[dict[str, Any]] = []

    def decode(samples: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
        pixels = np.empty((len(samples), h, w, c), dtype=np.uint8)
        for i, (f, _) in enumerate(samples):
            raw = f.read_bytes()
            records.append({"name": f.relative_to(layout.root).as_posix(), "size": len(raw),
                            "sha256": hashlib.sha256(raw).hexdigest()})
            pixels[i] = decode_image(f, raw, mode, (w, h)).reshape(h, w, c)
        x = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # N x C x H x W in [0, 1]
        return x, np.asarray([k for _, k in samples], dtype=np.int64)

    x_train, y_train = decode(layout.train)
    x_test, y_test = decode(layout.test) if layout.test is not None else (None, None)
    task: Task = "binary" if len(layout.classes) == 2 else "multiclass"
    return ArrayData(x_train, y_train, task, list(layout.classes), x_test, y_test, _listed(records))


def _listed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every file, or past MAX_LISTED_FILES one record per folder that folds its files in."""
    if len(records) <= MAX_LISTED_FILES:
        return records
    folders: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        folders.setdefault(r["name"].rsplit("/", 1)[0] + "/", []).append(r)
    out = []
    for name, group in folders.items():
        digest = hashlib.sha256("".join(f"{r['name']}:{r['size']}:{r['sha256']}\n" for r in group).encode())
        out.append({"name": name, "files": len(group), "size": sum(r["size"] for r in group),
                    "sha256": digest.hexdigest()})
    return out
