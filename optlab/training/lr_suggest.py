"""Where to read a learning rate off an LR range test curve: pure numpy, no torch.

The anchors' suggestions fail in known ways (see docs/lr-find.md): the steepest point of a raw
or lagging curve moves by decades with the seed, a NaN tail ends up as the answer, a flat or
rising curve still yields a number. Here the curve is smoothed with a debiased exponential
moving average run both ways (no lag, so the smoothing does not drag the answer towards larger
learning rates), differentiated against log10(lr) over a fixed fraction of a decade, and read
only inside the stable region; fastai's "valley" rule cross-checks it; and a curve that does
not clearly descend, or has too few points, gets confidence "low" and no suggestion at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

# Smoothing and slope windows are in decades of lr, not in points, so `--steps` changes how
# many points feed the estimate, not what it estimates.
SMOOTH_DECADES = 0.5
SLOPE_DECADES = 0.25
STEEP_FRACTION = 0.7
MIN_POINTS = 20
# A descent counts when the smoothed minimum is this far below the start (relative to the
# start's magnitude) and well outside the noise.
MIN_RELATIVE_DROP = 0.05
NOISE_MULTIPLE = 3.0
DISAGREE_DECADES = 0.5
SEED_SPREAD_DECADES = 1.0
RANGE_TOP_DIVISOR = 3.0

Confidence = Literal["high", "low"]


def points_per_decade(lrs: Sequence[float] | np.ndarray) -> float:
    x = np.log10(np.asarray(lrs, dtype=float))
    return (len(x) - 1) / max(float(x[-1] - x[0]), 1e-12) if len(x) > 1 else 1.0


def smoothing_beta(per_decade: float) -> float:
    """The EMA factor whose span covers SMOOTH_DECADES of the ladder (span s: beta = 1 - 2/(s+1))."""
    span = max(2.0, SMOOTH_DECADES * per_decade)
    return 1.0 - 2.0 / (span + 1.0)


def debiased_ema(values: Sequence[float] | np.ndarray, beta: float) -> np.ndarray:
    """Exponential moving average divided by (1 - beta^i), so its first values are not pulled
    towards zero (fastai's and Lightning's smoothing)."""
    out = np.empty(len(values))
    avg = 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1.0 - beta) * float(v)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def zero_lag_ema(values: np.ndarray, beta: float) -> np.ndarray:
    """The mean of the debiased EMA run forwards and backwards: the same smoothing, no shift."""
    return (debiased_ema(values, beta) + debiased_ema(values[::-1], beta)[::-1]) / 2.0


def slope(x: np.ndarray, y: np.ndarray, half_width: int) -> np.ndarray:
    """dy/dx by central differences `half_width` points apart (one-sided at the ends)."""
    n = len(y)
    lo = np.clip(np.arange(n) - half_width, 0, n - 1)
    hi = np.clip(np.arange(n) + half_width, 0, n - 1)
    return (y[hi] - y[lo]) / np.maximum(x[hi] - x[lo], 1e-12)


def steepest_stretch_centre(d: np.ndarray, first: int = 0) -> int:
    """Index of the middle of the contiguous stretch around the steepest slope at or after
    `first` where the slope stays within STEEP_FRACTION of it. Where the slope changes slowly
    (a parabola's flank) the single steepest point is decided by noise; the stretch's ends are
    decided by the shape, so it may reach back before `first` (a flat head never qualifies)."""
    i = first + int(np.argmin(d[first:]))
    if d[i] >= 0:
        return i
    steep = d <= STEEP_FRACTION * d[i]
    lo = hi = i
    while lo > 0 and steep[lo - 1]:
        lo -= 1
    while hi < len(d) - 1 and steep[hi + 1]:
        hi += 1
    return (lo + hi) // 2


def longest_valley(y: np.ndarray) -> tuple[int, int]:
    """First and last index of the longest strictly decreasing subsequence of `y` (fastai's
    valley); O(n^2), n is a few hundred points at most."""
    n = len(y)
    length = np.ones(n, dtype=int)
    first = np.arange(n)
    for i in range(1, n):
        earlier = np.flatnonzero(y[:i] > y[i])
        if len(earlier):
            j = earlier[np.argmax(length[earlier])]
            length[i], first[i] = length[j] + 1, first[j]
    end = int(np.argmax(length))
    return int(first[end]), end


@dataclass
class Suggestion:
    suggestion: float | None  # None when confidence is low: no number is *the* answer
    confidence: Confidence
    steepest_lr: float | None = None
    valley_lr: float | None = None
    range: tuple[float, float] | None = None
    min_loss_lr: float | None = None
    usable_points: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["range"] = list(self.range) if self.range else None
        return doc


def suggest(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Read one range test curve (lr ascending, the loss after each step)."""
    lr = np.asarray(lrs, dtype=float)
    loss = np.asarray(losses, dtype=float)
    bad = np.flatnonzero(~np.isfinite(loss))
    usable = int(bad[0]) if len(bad) else len(loss)  # a NaN tail is never read
    lr, loss = lr[:usable], loss[:usable]
    out = Suggestion(None, "low", usable_points=usable)
    if usable < MIN_POINTS:  # still read (range, minimum) when it can be, but never answered
        out.notes.append(f"only {usable} usable points (needs {MIN_POINTS})")
    if usable < 3:
        return out
    x = np.log10(lr)
    per_decade = points_per_decade(lr)
    beta = smoothing_beta(per_decade)
    smooth = zero_lag_ema(loss, beta)
    i_min = int(np.argmin(smooth))
    out.min_loss_lr = float(lr[i_min])

    head = max(3, int(round(SMOOTH_DECADES * per_decade)))
    start = float(np.median(loss[:head]))
    # Noise of one point (robust), then of the smoothed curve: a two-sided EMA averages about
    # (1 + beta) / (1 - beta) points.
    noise = 1.4826 * float(np.median(np.abs(loss - smooth)))
    noise_smoothed = noise * math.sqrt((1.0 - beta) / (1.0 + beta))
    threshold = max(MIN_RELATIVE_DROP * abs(start), NOISE_MULTIPLE * noise_smoothed)
    below = np.flatnonzero(smooth[: i_min + 1] < start - threshold)
    if not len(below):
        out.notes.append("the loss never descends clearly below its start")
        return out
    i_lo = int(below[0])
    top = lr[i_min] / RANGE_TOP_DIVISOR
    i_hi = max(i_lo, int(np.searchsorted(lr, top, side="right")) - 1)
    out.range = (float(lr[i_lo]), float(max(top, lr[i_lo])))

    half = max(1, int(round(SLOPE_DECADES * per_decade / 2)))
    d = slope(x, smooth, half)[: i_hi + 1]
    i_steep = steepest_stretch_centre(d, i_lo)
    out.steepest_lr = float(lr[i_steep])
    # fastai's valley, read from where the descent starts: on a curve with a long flat head the
    # longest decreasing run would begin in the head's noise and land decades too low.
    v_first, v_last = longest_valley(smooth[i_lo : i_min + 1])
    out.valley_lr = float(lr[i_lo + v_first + (v_last - v_first) // 2])
    gap = abs(math.log10(out.steepest_lr) - math.log10(out.valley_lr))
    if gap > DISAGREE_DECADES:
        out.notes.append(
            f"steepest descent ({out.steepest_lr:.3g}) and fastai's valley ({out.valley_lr:.3g}) "
            f"disagree by {gap:.1f} decades"
        )
    if usable < MIN_POINTS:
        return out
    if d[i_steep] >= 0:
        out.notes.append("no descending stretch inside the stable region")
        return out
    out.suggestion, out.confidence = out.steepest_lr, "high"
    return out


def _log_median(values: list[float]) -> float:
    return float(10 ** np.median(np.log10(values)))


@dataclass
class Combined:
    """Several seeds' readings of one run: the median and how far the seeds fall apart."""

    suggestion: float | None
    confidence: Confidence
    range: tuple[float, float] | None
    min_loss_lr: float | None
    spread_decades: float | None  # max over min of the seeds' suggestions, in decades
    median_suggestion: float | None  # kept when low: diagnostics, not the answer
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["range"] = list(self.range) if self.range else None
        return doc


def combine(readings: list[Suggestion]) -> Combined:
    """One reading per seed (a single seed is passed through); confidence is low when any seed
    is, or when the seeds' suggestions lie more than SEED_SPREAD_DECADES apart."""
    notes = [n for r in readings for n in r.notes]
    found = [r.suggestion for r in readings if r.suggestion is not None]
    ranges = [r.range for r in readings if r.range]
    minima = [r.min_loss_lr for r in readings if r.min_loss_lr is not None]
    median = _log_median(found) if found else None
    spread = float(np.ptp(np.log10(found))) if len(found) > 1 else (0.0 if found else None)
    low = any(r.confidence == "low" for r in readings)
    if spread is not None and spread > SEED_SPREAD_DECADES:
        notes.append(f"the seeds' suggestions spread over {spread:.1f} decades (limit {SEED_SPREAD_DECADES:g})")
        low = True
    if len(readings) > 1 and len(found) < len(readings):
        notes.append(f"{len(readings) - len(found)} of {len(readings)} seeds gave no suggestion")
    return Combined(
        suggestion=None if low else median,
        confidence="low" if low else "high",
        range=(_log_median([r[0] for r in ranges]), _log_median([r[1] for r in ranges])) if ranges else None,
        min_loss_lr=_log_median(minima) if minima else None,
        spread_decades=spread,
        median_suggestion=median,
        notes=list(dict.fromkeys(notes)),
    )
