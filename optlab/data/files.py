"""Datasets read from the user's own files: CSV and NPZ (image folders in `imagefolder.py`).

Each reader turns `[data]` into `ArrayData` (the split and standardisation are
`bundle_from_arrays`', as for every dataset) and records every file it read (name, size,
sha256), which enter the split and data fingerprints: one changed byte shows. A bad file is a
PresetError naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optlab.data.bundle import ArrayData
from optlab.data.catalog import Task
from optlab.errors import PresetError
from optlab.spec import CSV_DELIMITERS, DataConfig

MAX_AUTO_CLASSES = 100
NPZ_KEYS = (("x_train", "y_train", "x_test", "y_test"), ("x", "y"))


# ---------------------------------------------------------------------------------------------- files


def file_record(path: Path, name: str | None = None) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"name": name or path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def visible_files(folder: Path) -> list[Path]:
    """Every file under `folder` in a fixed order, skipping anything hidden (a name starting
    with '.': `.DS_Store`, `.ipynb_checkpoints/`, editors' swap files)."""
    found: list[Path] = []
    for here, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            _refuse_a_loop(Path(here) / d, folder)
        found.extend(Path(here) / n for n in sorted(names) if not n.startswith("."))
    return found


def _refuse_a_loop(sub: Path, folder: Path) -> None:
    """A linked folder that contains the one being read would be walked again and again (and
    its files counted many times, under the wrong class): refused, naming the link."""
    if not sub.is_symlink():
        return
    target = sub.resolve()
    here = sub.parent.resolve()
    if here == target or target in here.parents or target in folder.resolve().parents:
        raise PresetError(
            f"{sub}: a symbolic link to {target}, which contains it (a loop); remove the link or point it elsewhere"
        )


def files_signature(cfg: DataConfig) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of every file `cfg` reads: a changed file changes the signature."""
    out: list[tuple[str, int, int]] = []
    for given in (cfg.path, cfg.test_path):
        if not given:
            continue
        path = Path(given)
        for f in visible_files(path) if path.is_dir() else [path]:
            try:
                st = f.stat()
                out.append((str(f), st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(f), -1, -1))
    return tuple(out)


def existing(given: str | None, what: str, folder: bool = False) -> Path:
    path = Path(given or "")
    if folder and not path.is_dir():
        raise PresetError(f"data.{what} = {given!r}: no such folder")
    if not folder and not path.is_file():
        raise PresetError(f"data.{what} = {given!r}: " + ("a folder, not a file" if path.is_dir() else "no such file"))
    return path


# ---------------------------------------------------------------------------------------------- targets


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def encode_targets(
    train: Sequence[Any], test: Sequence[Any] | None, task: str, where: Callable[[bool, int], str]
) -> tuple[np.ndarray, np.ndarray | None, Task, list[str]]:
    """Class indices (or values) for the targets, the task, and the class names.

    `auto`: numbers that are all integers with at most 100 distinct values, or any text, are
    classification (binary when there are two classes), other numbers regression; numbers mixed
    with text are refused (a stray 'NA'), as is an empty target under any task. Classes are
    the distinct training values in sorted order; their names are the values as text.
    `where(is_test, i)` names the i-th value's place (file, row, column) for messages."""
    values = [list(train), list(test) if test is not None else []]
    # A missing target is never a value: taken as one, it turns a regression into text classes
    # (every number a class name) or adds a class '' to a classification, without a word.
    empty = next(((t, i) for t in (0, 1) for i, v in enumerate(values[t]) if isinstance(v, str) and not v.strip()), None)
    if empty is not None:
        raise PresetError(
            f"{where(bool(empty[0]), empty[1])}: the target is empty (missing targets are not supported: "
            "fill it in or drop the row)"
        )
    numbers = [[_number(str(v)) if not isinstance(v, int | float) else float(v) for v in part] for part in values]
    text_at = next(((t, i) for t in (0, 1) for i, v in enumerate(numbers[t]) if v is None), None)
    if text_at is None:
        bad = next(((t, i) for t in (0, 1) for i, v in enumerate(numbers[t]) if v is not None and not math.isfinite(v)), None)
        if bad is not None:
            raise PresetError(f"{where(bool(bad[0]), bad[1])}: target {values[bad[0]][bad[1]]!r} is not a finite number")
    if task == "auto":
        numeric_at = next(((t, i) for t in (0, 1) for i, v in enumerate(numbers[t]) if v is not None), None)
        if text_at is not None and numeric_at is not None:
            # Numbers with a stray word ('NA', '?', 'missing'): a missing value far more often
            # than a class, and guessing would make every number a class name.
            t, i = text_at
            raise PresetError(
                f"{where(bool(t), i)}: target {values[t][i]!r} is text among numbers (a missing value?): "
                "fill it in or drop the row, or set data.task = 'multiclass' to take every value as a class name"
            )
        if text_at is not None:
            task = "classification"
        else:
            distinct = set(numbers[0])
            integer_like = all(v is not None and v == round(v) for v in distinct)  # no None: text_at is None
            task = "classification" if integer_like and len(distinct) <= MAX_AUTO_CLASSES else "regression"
    if task == "regression":
        if text_at is not None:
            t, i = text_at
            raise PresetError(f"{where(bool(t), i)}: target {values[t][i]!r} is not a number (task = 'regression')")
        y_train = np.asarray(numbers[0], dtype=np.float64)
        y_test = np.asarray(numbers[1], dtype=np.float64) if test is not None else None
        return y_train, y_test, "regression", []

    keys: list[list[Any]] = numbers if text_at is None else [[str(v).strip() for v in part] for part in values]
    classes = sorted(set(keys[0]))
    if len(classes) < 2:
        raise PresetError(f"{where(False, 0)}: the target has a single value ({classes}): nothing to classify")
    if task == "binary" and len(classes) != 2:
        raise PresetError(f"{where(False, 0)}: task = 'binary' needs two classes, the target has {len(classes)}")
    index = {c: k for k, c in enumerate(classes)}
    for i, key in enumerate(keys[1]):
        if key not in index:
            raise PresetError(f"{where(True, i)}: target {values[1][i]!r} is not a class of the training data")
    names = [f"{c:g}" if isinstance(c, float) else str(c) for c in classes]
    y_train = np.asarray([index[k] for k in keys[0]], dtype=np.int64)
    y_test = np.asarray([index[k] for k in keys[1]], dtype=np.int64) if test is not None else None
    resolved: Task = "binary" if len(classes) == 2 and task != "multiclass" else "multiclass"
    return y_train, y_test, resolved, names


# ---------------------------------------------------------------------------------------------- csv


class _Table:
    """A CSV file's header and data rows, with each row's line number for messages."""

    def __init__(self, path: Path, label: str, delimiter: str = ",") -> None:
        self.path, self.label = path, label
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                reader = csv.reader(f, delimiter=delimiter)
                rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
        except UnicodeDecodeError:
            raise PresetError(f"{label}: not a UTF-8 text file") from None
        except (OSError, csv.Error) as exc:
            raise PresetError(f"{label}: cannot be read as CSV ({exc})") from None
        if not rows:
            raise PresetError(f"{label}: empty file (expected a header row, then one row per sample)")
        self.header = [c.strip() for c in rows[0][1]]
        _refuse_another_delimiter(self.header, delimiter, label)
        self.rows = rows[1:]
        if not self.rows:
            raise PresetError(f"{label}: no data rows after the header")
        dupes = sorted({c for c in self.header if self.header.count(c) > 1})
        if dupes or "" in self.header:
            problem = f"duplicate column {dupes[0]!r}" if dupes else "a column without a name"
            raise PresetError(f"{label}: the header has {problem}")
        for line, row in self.rows:
            if len(row) != len(self.header):
                raise PresetError(
                    f"{label}: row {line} has {len(row)} cells, the header has {len(self.header)} columns"
                )

    def column(self, name: str) -> int:
        if name not in self.header:
            raise PresetError(f"{self.label}: no column {name!r} (columns: {', '.join(self.header)})")
        return self.header.index(name)

    def features(self, names: list[str]) -> np.ndarray:
        cols = [self.column(n) for n in names]
        try:
            x = np.array([[row[j] for j in cols] for _, row in self.rows], dtype=np.float64)
        except ValueError:
            x = None
        if x is None or not np.isfinite(x).all():
            for line, row in self.rows:  # find the first bad cell, for the message
                for name, j in zip(names, cols, strict=True):
                    cell = row[j].strip()
                    value = _number(cell)
                    if value is None or not math.isfinite(value):
                        what = (
                            "an empty cell" if not cell
                            else f"not a number ({cell!r})" if value is None
                            else f"{cell!r} (missing or infinite values are not supported: fill or drop them)"
                        )
                        raise PresetError(f"{self.label}: row {line}, column {name!r}: {what}")
        assert x is not None
        return x.astype(np.float32)

    def where(self, name: str) -> Callable[[int], str]:
        return lambda i: f"{self.label}: row {self.rows[i][0]}, column {name!r}"


def _refuse_another_delimiter(header: list[str], delimiter: str, label: str) -> None:
    """A header read as one column that holds another separator (a ';' file from a European
    spreadsheet, a tab-separated export) would otherwise end as 'no feature columns' or a
    target named 'a;b;y': say what the file looks like and which setting reads it."""
    if len(header) != 1:
        return
    for other in CSV_DELIMITERS:
        if other != delimiter and other in header[0]:
            shown = "tab" if other == "\t" else repr(other)
            raise PresetError(
                f"{label}: the header is one column {header[0]!r}: looks {shown}-delimited: "
                f"set data.delimiter = {json.dumps(other)}"
            )


def read_csv(cfg: DataConfig) -> ArrayData:
    """`[data] dataset = "csv"`: a header row, one row per sample, numeric feature cells."""
    path = existing(cfg.path, "path")
    train = _Table(path, str(path), cfg.delimiter)
    target = cfg.target or train.header[-1]
    train.column(target)
    for name in cfg.drop or []:
        train.column(name)
    features = cfg.features or [c for c in train.header if c != target and c not in (cfg.drop or [])]
    if not features:
        raise PresetError(f"{path}: no feature columns left besides the target {target!r}")
    test = _Table(existing(cfg.test_path, "test_path"), str(cfg.test_path), cfg.delimiter) if cfg.test_path else None
    x_train = train.features(features)
    x_test = test.features(features) if test else None
    t_col = train.column(target)
    y_raw = [row[t_col] for _, row in train.rows]
    y_test_raw = [row[test.column(target)] for _, row in test.rows] if test else None
    places = (train.where(target), test.where(target) if test else train.where(target))
    y_train, y_test, task, names = encode_targets(y_raw, y_test_raw, cfg.task, lambda t, i: places[t](i))
    files = [file_record(path)] + ([file_record(test.path)] if test else [])
    return ArrayData(x_train, y_train, task, names, x_test, y_test, files)


# ---------------------------------------------------------------------------------------------- npz


def read_npz(cfg: DataConfig) -> ArrayData:
    """`[data] dataset = "npz"`: arrays x_train, y_train (optionally x_test, y_test), or x, y;
    read with allow_pickle=False, so a file holding Python objects is refused, never run."""
    path = existing(cfg.path, "path")
    if not zipfile.is_zipfile(path) and not _is_npy(path):
        # numpy would try to unpickle it and answer with advice about allow_pickle, which
        # misleads: the file is simply not what np.savez writes.
        raise PresetError(f"{path}: not an .npz archive (expected a zip file written by np.savez(path, x=..., y=...))")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise PresetError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise PresetError(f"{path}: a single array (.npy); expected an .npz archive (np.savez(path, x_train=..., y_train=...))")
    with archive:
        keys = set(archive.files)
        names = NPZ_KEYS[0] if "x_train" in keys or "y_train" in keys else NPZ_KEYS[1]
        expected = "x_train, y_train and optionally x_test, y_test (or x, y)"
        unknown = sorted(keys - set(names))
        missing = [k for k in names[:2] if k not in keys]
        if unknown or missing:
            problem = f"unknown arrays {', '.join(unknown)}" if unknown else f"no array {missing[0]!r}"
            raise PresetError(f"{path}: {problem}; expected {expected} (found: {', '.join(sorted(keys)) or 'none'})")
        if len(names) == 4 and ("x_test" in keys) != ("y_test" in keys):
            raise PresetError(f"{path}: x_test and y_test go together; found only {'x_test' if 'x_test' in keys else 'y_test'}")
        arrays = {k: _npz_array(archive, k, path) for k in names if k in keys}
    x_key, y_key = names[0], names[1]
    x_train, y_train = _features(arrays[x_key], x_key, path), _targets(arrays[y_key], y_key, path)
    _same_length(x_train, y_train, x_key, y_key, path)
    x_test = y_test = None
    if "x_test" in arrays:
        x_test, y_test = _features(arrays["x_test"], "x_test", path), _targets(arrays["y_test"], "y_test", path)
        _same_length(x_test, y_test, "x_test", "y_test", path)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise PresetError(
                f"{path}: x_test's samples have shape {x_test.shape[1:]}, x_train's {x_train.shape[1:]}"
            )

    def where(is_test: bool, i: int) -> str:
        return f"{path}: {'y_test' if is_test else y_key}[{i}]"

    y_tr, y_te, task, class_names = encode_targets(
        y_train.tolist(), y_test.tolist() if y_test is not None else None, cfg.task, where
    )
    return ArrayData(x_train, y_tr, task, class_names, x_test, y_te, [file_record(path)])


def _is_npy(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def _npz_array(archive: Any, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise PresetError(
            f"{path}: array {key!r} holds Python objects (dtype object); optlab reads .npz files with "
            "allow_pickle=False, so save numeric arrays (e.g. np.asarray(x, dtype=np.float32))"
        ) from None


def _features(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    """N x features, or images N x H x W (one channel) / N x C x H x W, as float32; uint8
    pixels are scaled to [0, 1] as torchvision's ToTensor does."""
    if x.dtype.kind not in "biuf":
        raise PresetError(f"{path}: {key} has dtype {x.dtype}; expected numbers")
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise PresetError(
            f"{path}: {key} has shape {x.shape}; expected N x features, N x H x W or N x C x H x W with N >= 1"
        )
    if 0 in x.shape[1:]:  # N x 0 would train a model on nothing (the bias alone)
        raise PresetError(f"{path}: {key} has shape {x.shape}: no features (every sample is empty)")
    out = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(out).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise PresetError(f"{path}: {key}{list(first)} is {out[first]} (missing or infinite values are not supported)")
    return out[:, None] if out.ndim == 3 else out


def _targets(y: np.ndarray, key: str, path: Path) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise PresetError(f"{path}: {key} has shape {y.shape}; expected one target per sample (N,)")
    if y.dtype.kind not in "biufU":
        raise PresetError(f"{path}: {key} has dtype {y.dtype}; expected numbers or text labels")
    return y


def _same_length(x: np.ndarray, y: np.ndarray, x_key: str, y_key: str, path: Path) -> None:
    if len(x) != len(y):
        raise PresetError(f"{path}: {x_key} has {len(x)} samples, {y_key} {len(y)}")
