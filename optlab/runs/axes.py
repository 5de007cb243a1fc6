"""Axis rules every chart shares, the TUI's braille charts and the reports' SVG charts alike:
1-2-5 ticks, log ticks, compact tick labels, when a y axis goes log, and the outlier rule that
keeps a diverged run's spike from flattening every other run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

OUTLIER_FACTOR = 100.0  # see outlier_cap
LOG_SPAN_DECADES = 1.0  # see wants_log


def nice_ticks(lo: float, hi: float, max_count: int) -> tuple[list[float], float]:
    """The most multiples of a 1-2-5 step inside [lo, hi], at most `max_count` of them, and
    the step. Ticks stay inside the data's range rather than widening it: on a dozen rows every
    row of resolution counts more than ticks at the very edges."""
    span = hi - lo
    if not (span > 0 and math.isfinite(span)) or max_count < 1:
        return [], 0.0
    top = math.floor(math.log10(span))
    best: tuple[list[float], float] = ([], 0.0)
    for exponent in range(top + 1, top - 4, -1):  # coarse to fine: the count only grows
        for mantissa in (5, 2, 1):
            step = mantissa * 10.0**exponent
            first = math.ceil(lo / step - 1e-9)
            last = math.floor(hi / step + 1e-9)
            if last - first + 1 > max_count:
                return best
            if last - first + 1 > len(best[0]):
                # %.12g drops the float noise of k * step (0.30000000000000004).
                best = ([float(f"{k * step:.12g}") for k in range(first, last + 1)], step)
    return best


def log_ticks(lo10: float, hi10: float, max_count: int) -> list[float]:
    """Ticks of a log axis spanning 10**lo10 .. 10**hi10, evenly spaced on it where possible:
    powers of ten (every other, every third ... when there are many); over a decade or two,
    1-2-5 or 1-3 values (3 sits about half a decade up); within a decade, linear nice values."""
    first, last = math.ceil(lo10 - 1e-9), math.floor(hi10 + 1e-9)
    powers = list(range(first, last + 1))
    if len(powers) >= 3:
        stride = math.ceil(len(powers) / max(1, max_count))
        picked = [k for k in powers if k % stride == 0]
        return [float(f"{10.0**k:.12g}") for k in (picked if len(picked) >= 2 else [first, last])]
    for mantissas in ((1, 2, 5), (1, 3)):
        values = [
            float(f"{m * 10.0**k:.12g}")
            for k in range(first - 1, last + 1)
            for m in mantissas
            if lo10 - 1e-9 <= math.log10(m) + k <= hi10 + 1e-9
        ]
        if 3 <= len(values) <= max_count:
            return values
    if len(powers) == 2:
        return [float(f"{10.0**k:.12g}") for k in powers]
    return nice_ticks(10.0**lo10, 10.0**hi10, max_count)[0]


def _fixed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_number(value: float, step: float = 0.0, scale: float = 0.0) -> str:
    """Compact tick text: 0.25, 1.2k, 3M, 1e-3. `step` (the ticks' spacing) sets how many
    digits tell neighbours apart (3 significant ones without it); `scale` (the largest tick)
    picks one notation for a whole axis, so 0.005 and 0.01 do not mix 5e-3 with 0.01."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    size = abs(value)
    scale = scale or size
    explicit_step = step > 0
    step = step or 10.0 ** (math.floor(math.log10(size)) - 2)
    if scale < 1e-2 or scale >= 1e12:
        digits = min(3, max(0, math.floor(math.log10(size)) - math.floor(math.log10(step) + 1e-9)))
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        return f"{_fixed(float(mantissa), digits)}e{int(exponent)}"
    # Thousands get a suffix once it is shorter: 1k, 1.2k and 20k, but 200 and 1200 as they are.
    if scale >= 1e4 or (scale >= 1e3 and (step >= 1e3 or not explicit_step)):
        div, suffix = next((d, s) for d, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if scale >= d)
        decimals = min(3, max(0, -math.floor(math.log10(step / div) + 1e-9)))
        return _fixed(value / div, decimals) + suffix
    return _fixed(value, min(6, max(0, -math.floor(math.log10(step) + 1e-9))))


def tick_labels(ticks: Sequence[float], step: float = 0.0) -> list[str]:
    """Labels of one axis's ticks, in one notation (log axes pass no step: each alone)."""
    if not step:
        return [format_number(t) for t in ticks]
    scale = max((abs(t) for t in ticks), default=0.0)
    return [format_number(t, step, scale) for t in ticks]


def outlier_cap(ys: np.ndarray, factor: float = OUTLIER_FACTOR) -> float | None:
    """The top of a linear y axis that leaves out outliers, or None when there are none.

    A run that diverges logs losses of 1e4, 1e30 before its loss turns non-finite; scaled to
    them, every other run lies flat on the zero line. A value is an outlier when it is more
    than `factor` times the bulk of the data (the 95th percentile, or the 5-95 % spread when
    that is larger); the axis then ends at the largest value that is not one, so the high
    start of a healthy loss curve, or a learning rate's warm-up, stays in view."""
    finite = ys[np.isfinite(ys)]
    if len(finite) < 2:
        return None
    q05, q95 = np.quantile(finite, [0.05, 0.95])
    bulk = max(abs(float(q95)), float(q95 - q05), 1e-12)
    kept = finite[finite <= float(q95) + factor * bulk]
    if len(kept) == len(finite) or not len(kept):
        return None
    return float(kept.max())


def wants_log(series: Iterable[Sequence[float]]) -> bool:
    """A y axis goes log by itself when its series' positive values span more than a decade
    (learning rates: adadelta's 1.0 beside sgd's 0.01 would leave every other run flat at the
    bottom of a linear axis)."""
    arrays = [np.asarray(ys, dtype=np.float64) for ys in series if len(ys)]
    if not arrays:
        return False
    values = np.concatenate(arrays)
    positive = values[np.isfinite(values) & (values > 0)]
    return bool(len(positive)) and math.log10(float(positive.max()) / float(positive.min())) > LOG_SPAN_DECADES
