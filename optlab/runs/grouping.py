"""Repeated seeds as plain data, for the TUI and the reports' charts alike: which runs form one
configuration, which colour each gets, and each configuration's mean and band over its seeds.

A configuration's seeds differ in nothing but the seed, so they report the same epochs and the
same steps: their points line up by epoch number (per-epoch values) or by step (per-interval
values), and the statistics at a point are taken over the seeds that reached it, exactly as
`optlab.runs.aggregate.history_bands` does for results.json (finite values only, sample std).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optlab.runs.aggregate import STD_DDOF, groups

# `b` cycles through these. min-max is the default: with the few seeds people run (2 to 5) it
# shows every seed's extent and assumes no distribution, where ± one std would.
BAND_MODES = ("minmax", "std", "seeds")
BAND_LABELS = {"minmax": "min–max", "std": "mean ± std", "seeds": "each seed"}


@dataclass
class Grouping:
    """Runs by configuration (group), in preset order. Without repeated seeds every run is its
    own key and colour, so an experiment without seeds looks exactly as before."""

    groups: dict[str, list[str]] = field(default_factory=dict)
    repeats: bool = False
    _key: dict[str, str] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Grouping:
        by_group = {name: [str(r.get("name")) for r in runs] for name, runs in groups(doc).items()}
        repeats = any(len(names) > 1 for names in by_group.values())
        out = cls(by_group, repeats)
        keys = list(by_group) if repeats else [n for names in by_group.values() for n in names]
        out._index = {key: i for i, key in enumerate(keys)}
        for group, names in by_group.items():
            for name in names:
                out._key[name] = group if repeats else name
        return out

    def key(self, run: str) -> str:
        """What a run is coloured, highlighted and drawn by: its group with repeats, else itself."""
        return self._key.get(run, run)

    def color_index(self, run: str) -> int:
        return self._index.get(self.key(run), 0)

    def first_run(self, group: str) -> str | None:
        names = self.groups.get(group)
        return names[0] if names else None


@dataclass
class Band:
    """Per aligned point: x (the mean of the seeds' x there), mean, std (NaN below two values),
    min, max and n (the finite values counted)."""

    xs: list[float]
    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]
    n: list[int]

    def bounds(self, mode: str) -> tuple[list[float], list[float]]:
        """Lower and upper band lines: mean ± std, or min and max."""
        if mode == "std":
            return ([m - s for m, s in zip(self.mean, self.std, strict=True)],
                    [m + s for m, s in zip(self.mean, self.std, strict=True)])
        return list(self.min), list(self.max)

    @property
    def spread(self) -> bool:
        """Some point has two or more values (otherwise a band would only retrace the mean)."""
        return any(n > 1 for n in self.n)


# One run's points: alignment keys (epoch numbers or steps), x on the chosen axis, y.
Columns = tuple[Sequence[int], Sequence[float], Sequence[float]]


def band(runs: Sequence[Columns]) -> Band:
    """Mean, sample std, min, max and n over runs at each alignment key, vectorised (a redraw
    of a long run reduces thousands of points per configuration, once a second)."""
    arrays = [(np.asarray(k, dtype=np.int64), np.asarray(x, dtype=float), np.asarray(y, dtype=float))
              for k, x, y in runs]
    if not any(len(k) for k, _, _ in arrays):
        return Band([], [], [], [], [], [])
    keys = np.unique(np.concatenate([k for k, _, _ in arrays]))
    ys = np.full((len(arrays), len(keys)), np.nan)
    xs = np.full((len(arrays), len(keys)), np.nan)
    for row, (k, x, y) in enumerate(arrays):
        columns = np.searchsorted(keys, k)
        xs[row, columns] = x
        ys[row, columns] = y
    finite = np.isfinite(ys)  # a diverged seed's inf/NaN counts as missing, as in results.json
    n = finite.sum(axis=0)
    mean = np.where(n > 0, np.where(finite, ys, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    deviation = np.where(finite, ys - mean, 0.0)
    std = np.where(n > STD_DDOF, np.sqrt((deviation**2).sum(axis=0) / np.maximum(n - STD_DDOF, 1)), np.nan)
    low = np.where(n > 0, np.where(finite, ys, np.inf).min(axis=0), np.nan)
    high = np.where(n > 0, np.where(finite, ys, -np.inf).max(axis=0), np.nan)
    has_x = np.isfinite(xs)
    x_mean = np.where(has_x, xs, 0.0).sum(axis=0) / np.maximum(has_x.sum(axis=0), 1)
    return Band(x_mean.tolist(), mean.tolist(), std.tolist(), low.tolist(), high.tolist(), n.tolist())
