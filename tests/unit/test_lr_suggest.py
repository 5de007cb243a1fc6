"""Reading a learning rate off range test curves: synthetic curves whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optlab.training.lr_find import RangeTestError, RangeTestSettings, lr_ladder
from optlab.training.lr_suggest import Suggestion, combine, debiased_ema, suggest

N = 100
LRS = np.array(lr_ladder(1e-7, 10.0, N))
X = np.log10(LRS)


def descent(x: np.ndarray) -> np.ndarray:
    """Flat at 2.3, a logistic descent whose steepest point is at lr 1e-2, a rise past lr 0.3."""
    return 2.3 - 2.0 / (1 + np.exp(-(x + 2) * 3)) + np.where(x > -0.5, 3 * (x + 0.5) ** 2, 0)


def parabola(x: np.ndarray) -> np.ndarray:
    """A bowl in log lr with its minimum at lr 10^-1.5."""
    return 0.2 * (x + 1.5) ** 2 + 0.3


def decades(a: float, b: float) -> float:
    return abs(math.log10(a) - math.log10(b))


def test_ladder_endpoints_and_ratios_are_exact() -> None:
    ladder = lr_ladder(1e-7, 10.0, 100)
    assert ladder[0] == 1e-7 and ladder[-1] == 10.0 and len(ladder) == 100
    ratios = np.array(ladder[1:]) / np.array(ladder[:-1])
    expected = (10.0 / 1e-7) ** (1 / 99)
    assert np.allclose(ratios, expected, rtol=1e-12, atol=0)
    assert lr_ladder(0.001, 0.1, 3) == [0.001, pytest.approx(0.01, rel=1e-15), 0.1]


def test_debiased_ema_starts_at_the_first_value() -> None:
    smoothed = debiased_ema([2.0, 2.0, 2.0], 0.98)
    assert np.allclose(smoothed, 2.0)  # a plain EMA would start at 0.04


@pytest.mark.parametrize("noise", [0.05, 0.15])
def test_descent_lands_at_its_steepest_point_noisy_or_clean(noise: float) -> None:
    clean = suggest(LRS, descent(X))
    assert clean.confidence == "high" and clean.suggestion is not None
    assert decades(clean.suggestion, 1e-2) <= 0.25
    for seed in range(5):
        noisy = suggest(LRS, descent(X) + noise * np.random.default_rng(seed).standard_normal(N))
        assert noisy.confidence == "high" and noisy.suggestion is not None
        assert decades(noisy.suggestion, clean.suggestion) <= 0.5, seed
        low, high = noisy.range or (0, 0)
        assert low < noisy.suggestion < high < noisy.min_loss_lr


def test_parabola_lands_on_its_descending_flank_noisy_or_clean() -> None:
    clean = suggest(LRS, parabola(X))
    assert clean.suggestion is not None and clean.min_loss_lr is not None
    assert decades(clean.min_loss_lr, 10**-1.5) < 0.1
    assert 1e-7 < clean.suggestion < clean.min_loss_lr / 3  # the known band: falling, below a third of the min
    for seed in range(5):
        noisy = suggest(LRS, parabola(X) + 0.1 * np.random.default_rng(seed).standard_normal(N))
        assert noisy.suggestion is not None
        assert decades(noisy.suggestion, clean.suggestion) <= 0.5, seed


def test_nan_tail_is_cut_not_read() -> None:
    y = descent(X) + 0.05 * np.random.default_rng(0).standard_normal(N)
    y[80:] = np.nan
    y[85] = np.inf
    reading = suggest(LRS, y)
    assert reading.usable_points == 80
    assert reading.suggestion is not None and decades(reading.suggestion, 1e-2) <= 0.5
    assert reading.min_loss_lr is not None and reading.min_loss_lr <= LRS[79]


@pytest.mark.parametrize(
    "curve",
    [
        2.3 + 0.05 * np.random.default_rng(1).standard_normal(N),  # flat
        2.3 + np.exp(X) + 0.05 * np.random.default_rng(2).standard_normal(N),  # only rises
    ],
    ids=["flat", "rising"],
)
def test_flat_and_rising_curves_give_low_confidence_and_no_number(curve: np.ndarray) -> None:
    reading = suggest(LRS, curve)
    assert reading.confidence == "low" and reading.suggestion is None
    assert "never descends" in " ".join(reading.notes)


def test_too_few_points_is_low() -> None:
    reading = suggest(LRS[:15], descent(X)[:15])
    assert reading.confidence == "low" and reading.suggestion is None


def test_seeds_combine_by_median_and_spread() -> None:
    readings = [Suggestion(v, "high", range=(v / 10, v * 3), min_loss_lr=v * 10) for v in (1e-3, 2e-3, 4e-3)]
    combined = combine(readings)
    assert combined.confidence == "high" and combined.suggestion == pytest.approx(2e-3)
    assert combined.spread_decades == pytest.approx(math.log10(4))
    apart = combine([Suggestion(1e-4, "high"), Suggestion(1e-2, "high")])
    assert apart.confidence == "low" and apart.suggestion is None
    assert apart.median_suggestion == pytest.approx(1e-3)
    assert "spread over 2.0 decades" in " ".join(apart.notes)
    one_low = combine([Suggestion(1e-3, "high"), Suggestion(None, "low")])
    assert one_low.suggestion is None and one_low.confidence == "low"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (RangeTestSettings(start=1.0, end=1.0), "must be below --end"),
        (RangeTestSettings(start=10.0, end=1.0), "must be below --end"),
        (RangeTestSettings(steps=9), "at least 10 steps"),
        (RangeTestSettings(start=0.0), "must both be > 0"),
        (RangeTestSettings(stop_factor=0.5), "--stop-factor"),
    ],
)
def test_bad_settings(settings: RangeTestSettings, message: str) -> None:
    with pytest.raises(RangeTestError, match=message):
        settings.check()
