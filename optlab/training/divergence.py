"""The one divergence rule, shared by `compare`'s trainer and the LR range test.

A loss diverges when it is not finite, or when its smoothed value climbs above `factor` times
a reference: the run's first loss for `compare` (`train.diverge_factor`), the best smoothed
loss so far for `lr-find` (its `--stop-factor`). Both callers check once per chunk of steps
they have already read back, so the rule costs no host sync of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def first_non_finite(values: Sequence[float]) -> int | None:
    """Index of the first NaN or infinite value, or None."""
    return next((i for i, v in enumerate(values) if not math.isfinite(v)), None)


def exceeds(smoothed: float, reference: float, factor: float) -> bool:
    """True when `smoothed` is above `factor` times `reference` (factor 0: never).

    Measured as a rise of (factor - 1) times the reference's magnitude, so a negative reference
    (a loss that can go below zero) does not turn "4x the best" into "anything above it"."""
    if factor <= 0 or not math.isfinite(reference):
        return False
    return smoothed > reference + (factor - 1.0) * abs(reference)


def describe(smoothed: float, reference: float, factor: float, what: str) -> str:
    return f"smoothed loss {smoothed:.4g} above {factor:g}x {what} ({reference:.4g})"
