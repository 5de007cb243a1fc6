"""Data files someone else made: every image is opened at validation as loading will open it,
so a hostile or damaged file is one clear preset error before any run directory exists."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optlab.data.catalog import describe_dataset
from optlab.data.datasets import load_dataset
from optlab.errors import PresetError
from optlab.spec import DataConfig


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + _chunk(b"IEND", b""))


def image_folder(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


# Past Pillow's limit (its own error) and between the limit and twice it (only a warning there).
@pytest.mark.parametrize(("width", "height"), [(20000, 20000), (10000, 10000)])
@pytest.mark.parametrize("image_size", [None, 8])
def test_an_image_claiming_hundreds_of_millions_of_pixels_is_refused_unread(
    tmp_path: Path, width: int, height: int, image_size: int | None
) -> None:
    root = image_folder(tmp_path / "images")
    (root / "a" / "bomb.png").write_bytes(png_bomb(width, height))
    cfg = DataConfig(dataset="imagefolder", path=str(root), image_size=image_size)
    with pytest.raises(PresetError, match=r"bomb\.png: its header claims .*more pixels than one image may have"):
        describe_dataset(cfg)
    with pytest.raises(PresetError, match=r"bomb\.png: its header claims"):
        load_dataset(cfg)


@pytest.mark.parametrize("image_size", [None, 8])
def test_a_truncated_image_is_found_at_validation(tmp_path: Path, image_size: int | None) -> None:
    root = image_folder(tmp_path / "images")
    whole = (root / "b" / "1.png").read_bytes()
    (root / "b" / "1.png").write_bytes(whole[: len(whole) // 2])  # the header is intact
    with pytest.raises(PresetError, match=r"1\.png: not a readable image \(OSError: image file is truncated"):
        describe_dataset(DataConfig(dataset="imagefolder", path=str(root), image_size=image_size))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_symlink_loop_in_an_image_folder_is_refused(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "images")
    (root / "a" / "again").symlink_to(root, target_is_directory=True)  # a's images would include b's
    with pytest.raises(PresetError, match=r"again: a symbolic link to .*images, which contains it \(a loop\)"):
        describe_dataset(DataConfig(dataset="imagefolder", path=str(root)))
    (root / "a" / "again").unlink()
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)
    with pytest.raises(PresetError, match=r"self: a symbolic link to .*which contains it"):
        describe_dataset(DataConfig(dataset="imagefolder", path=str(root)))
    (root / "a" / "self").unlink()
    (root / "a" / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # not a loop: followed
    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "elsewhere" / "x.png")
    assert describe_dataset(DataConfig(dataset="imagefolder", path=str(root))).n_total == 7


def test_presets_validate_and_compare_refuse_a_bomb_with_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from optlab.cli.main import app

    root = image_folder(tmp_path / "images")
    (root / "b" / "bomb.png").write_bytes(png_bomb(20000, 20000))
    preset = tmp_path / "p.toml"
    preset.write_text(
        'name = "p"\n[data]\ndataset = "imagefolder"\npath = "images"\n[model]\nname = "cnn"\n'
        '[train]\nepochs = 1\n[[runs]]\nname = "a"\noptimizer = { name = "sgd", lr = 0.1 }\n'
    )
    for args in (["presets", "validate", str(preset)], ["compare", str(preset), "--out", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "bomb.png: its header claims" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
