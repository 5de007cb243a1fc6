"""Your own data: CSV, NPZ and image folders written here, and a plugin's array loader."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from optlab import registry
from optlab.cli.main import app
from optlab.data import datasets as ds
from optlab.data import files as data_files
from optlab.data.catalog import describe_dataset
from optlab.data.datasets import load_dataset
from optlab.errors import PresetError
from optlab.preset.loader import load_preset, load_preset_text
from optlab.registry import PluginError, Source
from optlab.spec import DataConfig, parse_bytes
from optlab.training.trainer import Trainer


def write_csv(path: Path, n: int = 60, seed: int = 0, classes: int = 3) -> Path:
    """Columns id, a, b, label: label depends on a, so a model can learn it."""
    rng = np.random.default_rng(seed)
    lines = ["id,a,b,label"]
    for i in range(n):
        k = i % classes
        lines.append(f"{i},{k * 2 + rng.normal() * 0.1:.4f},{rng.normal():.4f},{k}")
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_cfg(path: Path, **kw: object) -> DataConfig:
    return DataConfig(dataset="csv", path=str(path), **kw)


# ---------------------------------------------------------------------------------------------- csv


def test_csv_classification_split_order_and_standardisation(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", n=60)
    b = load_dataset(csv_cfg(path, drop=["id"], val_fraction=0.25))
    assert (b.info.task, b.info.n_classes, b.info.input_shape) == ("multiclass", 3, (2,))
    assert b.class_names == ["0", "1", "2"]
    assert (len(b.x_train), len(b.x_val), len(b.x_test)) == (36, 12, 12)
    for key in ("train", "val", "test"):  # each part in the file's order, stratified
        assert np.all(np.diff(b.split_indices[key]) > 0)
    assert torch.bincount(b.y_test, minlength=3).tolist() == [4, 4, 4]
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    train_rows = raw[b.split_indices["train"]]
    assert b.y_train.tolist() == train_rows[:, 3].astype(int).tolist()
    mean, std = train_rows[:, 1:3].mean(0), train_rows[:, 1:3].std(0)
    assert np.allclose(b.x_train.numpy(), (train_rows[:, 1:3] - mean) / std, atol=1e-5)
    test_rows = raw[b.split_indices["test"]]
    assert np.allclose(b.x_test.numpy(), (test_rows[:, 1:3] - mean) / std, atol=1e-5)  # train statistics
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert b.facts()["files"] == [{"name": "d.csv", "size": path.stat().st_size, "sha256": sha}]


def test_csv_task_inference(tmp_path: Path) -> None:
    text = tmp_path / "text.csv"
    text.write_text("x,species\n" + "".join(f"{i},{'setosa' if i % 2 else 'virginica'}\n" for i in range(20)))
    b = load_dataset(csv_cfg(text))
    assert b.info.task == "binary" and b.class_names == ["setosa", "virginica"]
    floats = tmp_path / "floats.csv"
    floats.write_text("x,y\n" + "".join(f"{i},{i * 0.5 + 0.25}\n" for i in range(30)))
    r = load_dataset(csv_cfg(floats))
    assert r.info.task == "regression" and r.class_names == [] and r.y_train.dtype == torch.float32
    assert abs(float(r.y_train.mean())) < 1e-5 and r.target_std > 0  # standardised, like diabetes
    many = tmp_path / "many.csv"  # integers, but more than 100 distinct values: regression
    many.write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(150)))
    assert describe_dataset(csv_cfg(many)).task == "regression"
    assert describe_dataset(csv_cfg(many, task="multiclass")).n_classes == 150
    assert load_dataset(csv_cfg(write_csv(tmp_path / "b.csv", classes=2), target="label")).info.task == "binary"
    with pytest.raises(PresetError, match=r"row 2, column 'species': target 'virginica' is not a number"):
        load_dataset(csv_cfg(text, task="regression"))
    with pytest.raises(PresetError, match="task = 'binary' needs two classes, the target has 3"):
        load_dataset(csv_cfg(write_csv(tmp_path / "c.csv"), task="binary"))


def test_csv_columns_target_features_and_a_test_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", n=40)
    test = write_csv(tmp_path / "test.csv", n=12, seed=1)
    b = load_dataset(csv_cfg(train, test_path=str(test), features=["a"], target="label", val_fraction=0.0))
    assert (len(b.x_train), len(b.x_val), len(b.x_test)) == (40, 0, 12) and b.info.input_shape == (1,)
    assert b.split_indices["train"].tolist() == list(range(40))  # no validation split: the file's order
    assert [f["name"] for f in b.files] == ["train.csv", "test.csv"]
    id_target = load_dataset(csv_cfg(train, target="id", drop=["label"]))
    assert id_target.info.task == "multiclass" and id_target.info.input_shape == (2,)


@pytest.mark.parametrize(
    ("content", "kw", "message"),
    [
        ("a,b,y\n1,2,0\n3,x,1\n", {}, r"bad\.csv: row 3, column 'b': not a number \('x'\)"),
        ("a,b,y\n1,2,0\n3,nan,1\n", {}, r"bad\.csv: row 3, column 'b': 'nan' \(missing or infinite"),
        ("a,b,y\n1,,0\n", {}, r"bad\.csv: row 2, column 'b': an empty cell"),
        ("a,b,y\n1,2,0\n", {"target": "z"}, r"bad\.csv: no column 'z' \(columns: a, b, y\)"),
        ("a,b,y\n1,2,0\n", {"features": ["a", "q"]}, r"no column 'q'"),
        ("", {}, r"bad\.csv: empty file"),
        ("a,b,y\n", {}, r"bad\.csv: no data rows after the header"),
        ("a,b,y\n1,2,0\n1,2\n", {}, r"bad\.csv: row 3 has 2 cells, the header has 3 columns"),
        ("a,a,y\n1,2,0\n", {}, r"duplicate column 'a'"),
        ("a,b,y\n1,2,0\n1,2,0\n", {}, r"the target has a single value"),
        # A missing target would make a regression's numbers text classes, or add a class ''.
        ("a,y\n1,0.5\n2,\n3,1.25\n", {}, r"bad\.csv: row 3, column 'y': the target is empty \(missing targets"),
        ("a,y\n1,cat\n2, \n3,dog\n", {}, r"bad\.csv: row 3, column 'y': the target is empty"),
        ("a,y\n1,cat\n2,dog\n3,\n", {"task": "multiclass"}, r"row 4, column 'y': the target is empty"),
        ("a,y\n1,0.5\n2,1.5\n3,NA\n", {}, r"row 4, column 'y': target 'NA' is text among numbers \(a missing"),
    ],
)
def test_bad_csv_files_are_clear_errors(tmp_path: Path, content: str, kw: dict, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(PresetError, match=message):
        load_dataset(csv_cfg(path, **kw))


def test_missing_targets_in_a_test_file_or_an_npz_and_a_word_taken_as_a_class(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", n=30)
    test = tmp_path / "test.csv"
    test.write_text("id,a,b,label\n0,1,1,0\n1,1,1,\n")
    with pytest.raises(PresetError, match=r"test\.csv: row 3, column 'label': the target is empty"):
        load_dataset(csv_cfg(train, test_path=str(test)))
    npz = tmp_path / "t.npz"
    np.savez(npz, x=np.zeros((4, 2)), y=np.array(["a", "b", "", "a"]))
    with pytest.raises(PresetError, match=r"t\.npz: y\[2\]: the target is empty"):
        load_dataset(DataConfig(dataset="npz", path=str(npz)))
    words = tmp_path / "words.csv"  # told the values are classes, 'NA' is one of them
    words.write_text("a,y\n" + "".join(f"{i},{('1', '2', 'NA')[i % 3]}\n" for i in range(30)))
    assert describe_dataset(csv_cfg(words, task="multiclass")).n_classes == 3


@pytest.mark.parametrize(("sep", "shown", "setting"), [(";", "';'", '";"'), ("\t", "tab", '"\\t"'), ("|", "'|'", '"|"')])
def test_a_csv_with_another_delimiter_says_which_setting_reads_it(
    tmp_path: Path, sep: str, shown: str, setting: str
) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("".join(sep.join(row) + "\n" for row in [["a", "b", "y"]] + [[f"{i}", "1", f"{i % 2}"] for i in range(20)]))
    with pytest.raises(PresetError, match=rf"eu\.csv: the header is one column .*looks {shown}-delimited: "
                       rf"set data\.delimiter = {re.escape(setting)}$"):
        load_dataset(csv_cfg(path))
    b = load_dataset(csv_cfg(path, delimiter=sep, val_fraction=0.0))  # the setting reads it
    assert b.info.input_shape == (2,) and b.info.task == "binary" and len(b.x_train) == 16
    with pytest.raises(ValidationError, match=r"unknown delimiter ' '; allowed: ',', ';', '\\t', '\|'"):
        csv_cfg(path, delimiter=" ")
    with pytest.raises(ValidationError, match="delimiter is only for dataset 'csv'"):
        DataConfig(dataset="npz", path=str(path), delimiter=";")


def test_a_test_file_with_an_unknown_class_is_refused(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", n=30)
    test = tmp_path / "test.csv"
    test.write_text("id,a,b,label\n0,1,1,0\n1,1,1,7\n")
    with pytest.raises(PresetError, match=r"test\.csv: row 3, column 'label': target '7' is not a class"):
        load_dataset(csv_cfg(train, test_path=str(test)))


def test_data_fields_are_checked_for_the_dataset_they_belong_to(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="dataset 'csv' needs data.path"):
        DataConfig(dataset="csv")
    with pytest.raises(ValidationError, match="either features or drop, not both"):
        DataConfig(dataset="csv", path="x.csv", features=["a"], drop=["b"])
    with pytest.raises(ValidationError, match="target is only for dataset 'csv', not 'digits'"):
        DataConfig(dataset="digits", target="y")
    with pytest.raises(ValidationError, match="image_size is only for dataset 'imagefolder', not 'csv'"):
        DataConfig(dataset="csv", path="x.csv", image_size=8)
    for size in ([4], 0, [3, 0], [1, 2, 3]):
        with pytest.raises(ValidationError, match=r"image_size must be a size >= 1 or \[height, width\]"):
            DataConfig(dataset="imagefolder", path="x", image_size=size)
    with pytest.raises(ValidationError, match="options are for plugin datasets"):
        DataConfig(dataset="digits", options={"n": 1})
    with pytest.raises(ValidationError, match="unknown task 'classify'"):
        DataConfig(dataset="csv", path="x.csv", task="classify")
    with pytest.raises(PresetError, match=r"data.path = .*nothere.csv.: no such file"):
        load_dataset(csv_cfg(tmp_path / "nothere.csv"))
    assert parse_bytes("2GiB") == 2 * 1024**3 and parse_bytes("500 MB") == 500 * 1000**2 and parse_bytes(7) == 7
    with pytest.raises(ValueError, match="such as '2GiB'"):
        parse_bytes("lots")


# ---------------------------------------------------------------------------------------------- fingerprints


def test_one_changed_byte_changes_the_fingerprints(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", n=60)
    preset = f'[data]\ndataset = "csv"\npath = "{path}"\ndrop = ["id"]\n[model]\nhidden = [4]\n' \
             '[train]\nepochs = 1\nbatch_size = 16\n[[runs]]\nname = "a"\n'

    def prints() -> tuple[str, str, np.ndarray]:
        loaded = load_preset_text(preset)
        data = load_dataset(loaded.preset.data)
        trainer = Trainer(loaded.resolved_runs()[0], data)
        return data.split_fingerprint, trainer.data_fingerprint, data.split_indices["train"]

    split_a, data_a, train_a = prints()
    assert prints()[:2] == (split_a, data_a)  # deterministic
    text = path.read_text()
    i = text.index("\n1,") + 3  # a digit of row 3's feature a
    path.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :])
    split_b, data_b, train_b = prints()
    assert np.array_equal(train_a, train_b)  # same samples in the same order, other bytes
    assert split_b != split_a and data_b != data_a


def test_describe_reads_a_file_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "d.csv", n=30)
    reads: list[str] = []
    real = data_files.read_csv
    monkeypatch.setattr(data_files, "read_csv", lambda cfg: reads.append(cfg.path) or real(cfg))
    cfg = csv_cfg(path)
    first = [describe_dataset(cfg) for _ in range(5)]
    assert len(reads) == 1 and first[0] == first[-1] and first[0].n_total == 30
    write_csv(path, n=45)  # a new size (and mtime): read again
    assert describe_dataset(cfg).n_total == 45 and len(reads) == 2


# ---------------------------------------------------------------------------------------------- npz


def test_npz_with_and_without_a_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 6, 6), dtype=np.uint8)
    y = np.arange(50) % 5
    path = tmp_path / "img.npz"
    np.savez(path, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    b = load_dataset(DataConfig(dataset="npz", path=str(path), normalize=False, val_fraction=0.0))
    assert b.info.input_shape == (1, 6, 6) and (len(b.x_train), len(b.x_test)) == (40, 10)
    assert torch.equal(b.x_train[:, 0], torch.from_numpy(x[:40].astype(np.float32) / 255))
    assert b.class_names == ["0", "1", "2", "3", "4"] and b.info.task == "multiclass"
    norm = load_dataset(DataConfig(dataset="npz", path=str(path)))
    assert abs(float(norm.x_train.mean())) < 1e-5  # images: one scalar mean and std

    flat = tmp_path / "flat.npz"
    np.savez(flat, x=rng.normal(size=(40, 3)), y=rng.normal(size=40))
    r = load_dataset(DataConfig(dataset="npz", path=str(flat)))
    assert r.info.task == "regression" and (len(r.x_train), len(r.x_val), len(r.x_test)) == (26, 6, 8)
    assert torch.allclose(r.x_train.mean(0), torch.zeros(3), atol=1e-5)  # per feature


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.array([[1, "a"]], dtype=object), "y": np.array([0])}, r"array 'x' holds Python objects"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_tst": np.zeros((1, 2))}, r"unknown arrays x_tst"),
        ({"x_train": np.zeros((4, 2))}, r"no array 'y_train'"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, r"x has 4 samples, y 3"),
        ({"x": np.zeros(4), "y": np.zeros(4)}, r"x has shape \(4,\); expected N x features"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 3)),
          "y_test": np.zeros(2)}, r"x_test's samples have shape \(3,\), x_train's \(2,\)"),
        ({"x": np.array([[1.0, np.nan]] * 4), "y": np.arange(4) % 2}, r"x\[0, 1\] is nan"),
        ({"x": np.zeros((4, 0)), "y": np.arange(4) % 2}, r"x has shape \(4, 0\): no features"),
        ({"x_train": np.zeros((4, 3, 0)), "y_train": np.arange(4) % 2}, r"x_train has shape \(4, 3, 0\): no features"),
    ],
)
def test_bad_npz_files_are_clear_errors(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(PresetError, match=message):
        load_dataset(DataConfig(dataset="npz", path=str(path)))


def test_a_file_that_is_not_an_npz_archive(tmp_path: Path) -> None:
    (tmp_path / "a.npz").write_bytes(b"not a zip")
    with pytest.raises(PresetError, match=r"a\.npz: not an \.npz archive \(expected a zip file") as caught:
        load_dataset(DataConfig(dataset="npz", path=str(tmp_path / "a.npz")))
    assert "pickle" not in str(caught.value)  # numpy's advice about allow_pickle misleads here
    np.save(tmp_path / "one.npy", np.zeros((3, 2)))
    with pytest.raises(PresetError, match=r"a single array \(\.npy\)"):
        load_dataset(DataConfig(dataset="npz", path=str(tmp_path / "one.npy")))


# ---------------------------------------------------------------------------------------------- images


def write_images(folder: Path, classes: dict[str, int], size: tuple[int, int] = (6, 5), seed: int = 0) -> None:
    """PNG files: class k is a grey level of 40 * (k + 1), plus noise; size is (width, height)."""
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = np.full((size[1], size[0], 3), 40 * (k + 1), dtype=np.int16)
            pixels = np.clip(base + rng.integers(-10, 10, size=base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / name / f"{i:03d}.png")


def test_imagefolder_classes_hidden_entries_and_pixels(tmp_path: Path) -> None:
    write_images(tmp_path, {"cat": 10, "dog": 10, "owl": 10})
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (6, 5)).save(tmp_path / ".ipynb_checkpoints" / "x.png")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    cfg = DataConfig(dataset="imagefolder", path=str(tmp_path), normalize=False, val_fraction=0.0, test_fraction=0.2)
    b = load_dataset(cfg)
    assert b.class_names == ["cat", "dog", "owl"] and b.info.task == "multiclass"
    assert b.info.input_shape == (3, 5, 6) and (len(b.x_train), len(b.x_test)) == (24, 6)
    first = b.split_indices["train"][0]
    name = ["cat", "dog", "owl"][first // 10]
    png = np.asarray(Image.open(tmp_path / name / f"{first % 10:03d}.png"), dtype=np.float32) / 255
    assert torch.equal(b.x_train[0], torch.from_numpy(png).permute(2, 0, 1))
    assert len(b.files) == 30 and all(not f["name"].split("/")[-1].startswith(".") for f in b.files)
    assert describe_dataset(cfg) == b.info  # described from names and headers alone


def test_imagefolder_train_test_layout_grayscale_and_resize(tmp_path: Path) -> None:
    write_images(tmp_path / "train", {"a": 8, "b": 8}, size=(10, 12))
    write_images(tmp_path / "test", {"a": 3, "b": 2}, size=(10, 12), seed=1)
    b = load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path), grayscale=True, image_size=[4, 5],
                                val_fraction=0.25))
    assert b.info.input_shape == (1, 4, 5) and b.info.task == "binary"
    assert (len(b.x_train), len(b.x_val), len(b.x_test)) == (12, 4, 5)
    assert b.y_test.tolist() == [0, 0, 0, 1, 1] and b.files[-1]["name"] == "test/b/001.png"
    (tmp_path / "test" / "zebra").mkdir()
    with pytest.raises(PresetError, match="zebra: a class the training folder"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path)))


def test_imagefolder_errors_and_the_memory_estimate(tmp_path: Path) -> None:
    write_images(tmp_path, {"a": 4, "b": 4})
    Image.new("RGB", (9, 9)).save(tmp_path / "b" / "big.png")
    with pytest.raises(PresetError, match=r"images differ in size .* set data.image_size"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path)))
    # 9 images x 3 x 8 x 8 x 4 bytes = 6912 bytes
    cfg = DataConfig(dataset="imagefolder", path=str(tmp_path), image_size=8, max_memory="6KiB")
    with pytest.raises(PresetError, match=r"9 images of 3x8x8 need 6\.8 KiB as float32 tensors, more than "
                                          r"data.max_memory = 6\.0 KiB"):
        describe_dataset(cfg)
    assert len(load_dataset(cfg.model_copy(update={"max_memory": 6912})).x_train) > 0
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(PresetError, match=r"broken\.png: not a readable image"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(tmp_path), image_size=8))
    empty = tmp_path / "empty"
    (empty / "only").mkdir(parents=True)
    with pytest.raises(PresetError, match=r"expected one sub-folder per class \(at least two\), found only 'only'"):
        load_dataset(DataConfig(dataset="imagefolder", path=str(empty)))


# ---------------------------------------------------------------------------------------------- plugins


def toy_loader(n: int = 40, features: int = 3, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, features)) + y[:, None] * 3.0
    return {"x_train": x, "y_train": y, "task": "binary", "class_names": ["no", "yes"]}


@pytest.fixture
def plugin_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> registry.Registry:
    """A fresh process-wide registry (built-ins only) with a plugin file's dataset on top."""
    monkeypatch.setattr(registry, "_REGISTRY", None)
    reg = registry.registry()
    source = Source("file", path=str(tmp_path / "toy_plugin.py"), sha256="ab" * 32)
    reg.registrar(source).dataset("toy", toy_loader)
    reg.registrar(source).dataset("broken", lambda: {"x_train": [[1.0]], "y_train": np.zeros(1), "task": "binary"})
    return reg


def test_a_plugin_array_loader_gets_its_options_and_the_builtin_split(plugin_registry: registry.Registry) -> None:
    b = load_dataset(DataConfig(dataset="toy", options={"n": 50, "features": 4}))
    assert (b.info.name, b.info.task, b.info.input_shape, b.info.n_total) == ("toy", "binary", (4,), 50)
    assert (len(b.x_train), len(b.x_val), len(b.x_test)) == (32, 8, 10) and b.class_names == ["no", "yes"]
    assert torch.bincount(b.y_test).tolist() == [5, 5]  # stratified
    assert torch.allclose(b.x_train.mean(0), torch.zeros(4), atol=1e-5)
    assert describe_dataset(DataConfig(dataset="toy", options={"n": 50, "features": 4})) == b.info
    loaded = load_preset_text('[data]\ndataset = "toy"\n[data.options]\nn = 30\n[[runs]]\nname = "a"\nbatch_size = 8\n')
    assert loaded.resolved_runs()[0].data.options == {"n": 30}


def test_plugin_options_and_results_are_checked(plugin_registry: registry.Registry) -> None:
    with pytest.raises(PresetError, match=r"<preset>: data: data.options: dataset 'toy' takes no option 'seeed' "
                                          r"\(did you mean 'seed'\?\); allowed: n, features, seed"):
        load_preset_text('[data]\ndataset = "toy"\noptions = { seeed = 1 }\n[[runs]]\nname = "a"\n')
    with pytest.raises(PluginError, match=r"dataset 'broken' \(.*toy_plugin.py.*\): x_train must be a numeric numpy"):
        load_dataset(DataConfig(dataset="broken"))


# ---------------------------------------------------------------------------------------------- the CLI


def test_compare_trains_a_csv_next_to_its_preset_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_csv(project / "data.csv", n=60)
    (project / "p.toml").write_text('[data]\ndataset = "csv"\npath = "data.csv"\ndrop = ["id"]\n[model]\n'
                                    'hidden = [4]\n[train]\nepochs = 1\nbatch_size = 16\n[[runs]]\nname = "a"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["compare", str(project / "p.toml"), "--out", "out", "-q", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads((elsewhere / "out" / "results.json").read_text())
    assert doc["dataset"]["files"][0]["sha256"] == hashlib.sha256((project / "data.csv").read_bytes()).hexdigest()
    spec = load_preset(str(elsewhere / "out" / "preset.toml")).preset.data
    assert spec.path == str((project / "data.csv").resolve())  # stored absolute: resume works from anywhere
    # Titled by the file's stem, not "csv" like every CSV experiment; the reader stays named.
    assert (doc["dataset"]["name"], doc["dataset"]["title"]) == ("csv", "data")
    assert "data (csv, multiclass, 3 classes)" in (elsewhere / "out" / "report.md").read_text()
    table = CliRunner().invoke(app, ["report", str(elsewhere / "out")], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "p: data on cpu" in table.stdout, table.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [("a,y\n1,0\nfoo,1\n", "bad.csv: row 3, column 'a': not a number ('foo')"),
     ("a,y\n1,0\n2,nan\n", "bad.csv: row 3, column 'y': target 'nan' is not a finite number"),
     ("a,y\n1,0.5\n2,\n3,1.5\n", "bad.csv: row 3, column 'y': the target is empty")],
)
def test_compare_with_a_bad_csv_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text(content)
    (tmp_path / "p.toml").write_text('[data]\ndataset = "csv"\npath = "bad.csv"\n[[runs]]\nname = "a"\n')
    result = CliRunner().invoke(app, ["compare", "p.toml", "--out", "out"])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_the_describe_cache_is_bounded(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", n=30)
    for seed in range(ds._DESCRIBED_MAX + 5):
        describe_dataset(csv_cfg(path, split_seed=seed))
    assert len(ds._DESCRIBED) == ds._DESCRIBED_MAX


def test_paths_are_relative_to_the_file_that_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "base" / "data").mkdir(parents=True)
    write_csv(tmp_path / "base" / "data" / "d.csv", n=30)
    (tmp_path / "base" / "base.toml").write_text(
        '[data]\ndataset = "csv"\npath = "data/d.csv"\n[train]\nbatch_size = 8\n[[runs]]\nname = "a"\n'
    )
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "child.toml").write_text('extends = "../base/base.toml"\n[train]\nepochs = 1\n')
    monkeypatch.chdir(tmp_path / "child")
    loaded = load_preset("child.toml")
    assert loaded.preset.data.path == str((tmp_path / "base" / "data" / "d.csv").resolve())
    write_csv(tmp_path / "child" / "other.csv", n=20)
    other = load_preset("child.toml", ["data.path=other.csv"])  # the command line: relative to here
    assert other.preset.data.path == str((tmp_path / "child" / "other.csv").resolve())
    assert describe_dataset(other.preset.data).n_total == 20
