"""The dataset half of the plugin contract: `loader(**options)` returns a mapping with numpy
arrays `x_train`, `y_train` (optionally `x_test`, `y_test`), `task` ("multiclass", "binary" or
"regression") and `class_names`. The options come from the preset's `[data.options]` table and
are checked against the loader's signature before it is called; what it returns is checked
here, so a plugin's mistake is one clear message, not a shape error deep in training.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from optlab.data.bundle import ArrayData
from optlab.data.catalog import Task
from optlab.errors import PresetError
from optlab.registry import PluginError, exit_message, signature_params

if TYPE_CHECKING:
    from optlab.registry import Entry

TASKS: tuple[Task, ...] = ("multiclass", "binary", "regression")
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


def options_error(entry: Entry, options: Mapping[str, Any]) -> str | None:
    """Why `options` cannot be passed to the loader of `entry`, or None."""
    named, takes_any = signature_params(entry.factory())
    unknown = [k for k in options if k not in named]
    if unknown and not takes_any:
        hint = difflib.get_close_matches(unknown[0], named, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        allowed = ", ".join(named) or "none"
        return f"data.options: dataset {entry.name!r} takes no option {unknown[0]!r}{suggestion}; allowed: {allowed}"
    return None


def arrays_from_loader(entry: Entry, options: Mapping[str, Any]) -> ArrayData:
    """Call a plugin's loader with `options` and check what it returns."""
    problem = options_error(entry, options)
    if problem:
        raise PresetError(problem)
    who = f"dataset {entry.name!r} ({entry.source.describe()})"
    try:
        result = entry.factory()(**options)
    except (PresetError, PluginError):
        raise
    except SystemExit as exc:
        raise PluginError(exit_message(who, exc, "in its loader")) from None
    except Exception as exc:  # the plugin's own failure: say whose, keep the traceback out
        raise PluginError(f"{who}: the loader failed ({type(exc).__name__}: {exc})") from None
    return arrays_from_mapping(result, who)


def arrays_from_mapping(result: object, who: str) -> ArrayData:
    if not isinstance(result, Mapping):
        raise PluginError(f"{who}: the loader must return a mapping, got {type(result).__name__}")
    unknown = sorted(set(result) - {*ARRAY_KEYS, "task", "class_names"})
    if unknown:
        raise PluginError(f"{who}: unknown keys {', '.join(map(str, unknown))}; allowed: "
                          f"{', '.join(ARRAY_KEYS)}, task, class_names")
    task = result.get("task")
    if task not in TASKS:
        raise PluginError(f"{who}: task must be one of {', '.join(TASKS)}, got {task!r}")
    task = cast(Task, task)
    arrays: dict[str, np.ndarray] = {}
    for key in ARRAY_KEYS:
        value = result.get(key)
        if value is None:
            if key in ("x_train", "y_train"):
                raise PluginError(f"{who}: the loader returned no {key!r}")
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            kind = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
            raise PluginError(f"{who}: {key} must be a numeric numpy array, got {kind}")
        arrays[key] = value
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise PluginError(f"{who}: x_test and y_test go together")
    names = result.get("class_names") or []
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise PluginError(f"{who}: class_names must be a list of strings")

    xs: dict[str, np.ndarray] = {k: _samples(arrays[k], k, who) for k in ("x_train", "x_test") if k in arrays}
    ys: dict[str, np.ndarray] = {k: _labels(arrays[k], k, who) for k in ("y_train", "y_test") if k in arrays}
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        if x_key in xs and len(xs[x_key]) != len(ys[y_key]):
            raise PluginError(f"{who}: {x_key} has {len(xs[x_key])} samples, {y_key} {len(ys[y_key])}")
    if "x_test" in xs and xs["x_test"].shape[1:] != xs["x_train"].shape[1:]:
        raise PluginError(f"{who}: x_test's samples have shape {xs['x_test'].shape[1:]}, "
                          f"x_train's {xs['x_train'].shape[1:]}")
    if task == "regression":
        names = []
    else:
        n_classes = len(names) or int(max(int(y.max()) for y in ys.values() if len(y))) + 1
        if task == "binary" and n_classes != 2:
            raise PluginError(f"{who}: a binary task needs two classes, got {n_classes}")
        for key, y in ys.items():
            if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)) or (len(y) and (y.min() < 0 or y.max() >= n_classes)):
                raise PluginError(f"{who}: {key} must hold class indices 0..{n_classes - 1}")
        names = list(names) or [str(i) for i in range(n_classes)]
    return ArrayData(
        x_train=xs["x_train"], y_train=ys["y_train"], task=task, class_names=list(names),
        x_test=xs.get("x_test"), y_test=ys.get("y_test"),
    )


def _samples(x: np.ndarray, key: str, who: str) -> np.ndarray:
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise PluginError(f"{who}: {key} has shape {x.shape}; expected N x features, N x H x W or N x C x H x W")
    if 0 in x.shape[1:]:
        raise PluginError(f"{who}: {key} has shape {x.shape}: no features (every sample is empty)")
    # uint8 pixels to [0, 1], as torchvision's ToTensor and the npz reader do
    out = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(out).all():
        raise PluginError(f"{who}: {key} holds NaN or infinite values")
    return out[:, None] if out.ndim == 3 else out


def _labels(y: np.ndarray, key: str, who: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise PluginError(f"{who}: {key} has shape {y.shape}; expected one target per sample (N,)")
    if not np.isfinite(y.astype(np.float64)).all():
        raise PluginError(f"{who}: {key} holds NaN or infinite values")
    return y
