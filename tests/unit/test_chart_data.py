"""Chart data below the front ends: the log-scale and outlier rules every chart shares."""

from __future__ import annotations

import numpy as np

from optlab.runs.axes import outlier_cap, wants_log


def test_an_axis_goes_log_when_its_values_span_more_than_a_decade() -> None:
    assert wants_log([[1.0, 1.0], [0.01, 0.02]])  # adadelta beside sgd
    assert not wants_log([[0.1, 0.05], [0.02]])  # within a decade: linear reads best
    assert not wants_log([[], [0.0, -1.0, float("nan")]])  # nothing positive to put on a log axis
    assert wants_log([[0.1, 0.0, 1e-4]])  # zeros are ignored, not a reason to refuse


def test_outlier_cap_keeps_a_diverged_spike_from_setting_the_scale() -> None:
    healthy = np.linspace(2.3, 0.2, 200)
    assert outlier_cap(healthy) is None
    cap = outlier_cap(np.concatenate([healthy, [1e4, 1e30]]))
    assert cap == healthy.max()
