"""Focus below the front ends: the envelope of the runs not in focus, and which runs are."""

from __future__ import annotations

import math

import numpy as np
from sweep_fixtures import LRS, OPTIMIZERS, sweep_events

from optlab.runs.focus import envelope, focus_note, focus_series, focused_runs, ranked
from optlab.runs.palette import FADED
from optlab.runs.series import ChartData
from optlab.tui.widgets.braille import Trace, rasterize, render


def _data(**kwargs: object) -> ChartData:
    from optlab.runs.results import replay

    events = sweep_events(**kwargs)  # type: ignore[arg-type]
    return ChartData.from_events(replay(events), events)


def test_envelope_is_min_and_max_per_x_bucket_without_non_finite_values() -> None:
    runs = [([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0]), ([0, 1, 2, 3], [5.0, math.nan, 0.5, 6.0]), ([], [])]
    env = envelope(runs, bins=4)
    assert env.xs == [0.0, 1.0, 2.0, 3.0]
    assert env.low == [1.0, 2.0, 0.5, 4.0] and env.high == [5.0, 2.0, 3.0, 6.0]
    # runs at different x fall into shared buckets: 2 buckets over [0, 4]
    env = envelope([([0, 1, 4], [1, 2, 3]), ([0.5, 3.9], [7, 0])], bins=2)
    assert env.low == [1.0, 0.0] and env.high == [7.0, 3.0]
    assert envelope([]).xs == [] and envelope([([1], [math.inf])]).xs == []


def test_focus_keeps_the_top_runs_by_best_validation_and_bands_the_rest() -> None:
    data = _data(optimizers=OPTIMIZERS, lrs=LRS, seeds=(0, 1, 2), diverge_at=3e-1)
    assert len(data.run_names) == 192
    top = ranked(data)[:3]
    assert top[0] == "sgd-lr1e-1@s2"  # the highest accuracy of the fixture (its best lr, last seed)
    assert focused_runs(data, k=3) == top
    series = focus_series(data, "step", 0.0, k=3)
    for chart in ("loss", "lr", "val"):
        band = series[chart][0]
        assert band.style == "envelope" and band.color == FADED and band.label == "+189 in grey"
        assert len(band.upper) == len(band.ys) == len(band.xs) > 0
        assert all(lo <= hi for lo, hi in zip(band.ys, band.upper, strict=True))
    assert [s.label for s in series["val"] if s.legend] == ["+189 in grey", *top]
    # each run wears its configuration's colour, as in the tables; the legend names configurations
    assert len({s.color for s in series["val"][1:]}) == len({data.grouping.key(n) for n in top})
    assert series["val"][1].legend_label == "sgd-lr1e-1"
    # the val envelope spans the other runs' values and nothing else
    others = [v for n in data.run_names if n not in top for v in data.val_metric(n, "step", "val_accuracy")[1]]
    assert min(series["val"][0].ys) == min(others) and max(series["val"][0].upper) == max(others)


def test_highlight_focuses_one_configuration_and_a_table_order_wins() -> None:
    data = _data(optimizers=OPTIMIZERS[:2], lrs=LRS[:4], seeds=(0, 1))
    assert focused_runs(data, highlight="adam-lr1e-3") == ["adam-lr1e-3@s0", "adam-lr1e-3@s1"]
    order = ["sgd-lr1e-4@s1", "nope", "sgd-lr1e-4@s0"]
    assert focused_runs(data, k=2, order=order) == ["sgd-lr1e-4@s1", "sgd-lr1e-4@s0"]
    assert focus_note(16, 2, "adam-lr1e-3") == "focus: adam-lr1e-3 of 16 runs · grey: min–max of the other 14"


def test_a_band_is_shaded_under_lines_and_a_line_inside_it_keeps_its_cells() -> None:
    xs = np.asarray([0.0, 1.0])
    band = (xs, np.asarray([0.0, 0.0]), np.asarray([1.0, 1.0]), FADED)
    line = (xs, np.asarray([0.5, 0.5]), 39, "")
    grid = rasterize([line], 4, 4, (0.0, 1.0), (0.0, 1.0), fills=[band])
    assert (grid.color[[0, 1, 3]] == FADED).all()  # every cell of the band is shaded grey
    line_row = 1 if (grid.color[1] == 39).all() else 2
    assert (grid.color[line_row] == 39).all()  # the line's cells show the line alone, in its colour
    only_line = rasterize([line], 4, 4, (0.0, 1.0), (0.0, 1.0))
    assert (grid.bits[line_row] == only_line.bits[line_row]).all()
    # the band alone: solid edges, every other dot inside (a shade, not a block)
    shaded = rasterize([], 4, 4, (0.0, 1.0), (0.0, 1.0), fills=[band]).bits
    assert (shaded[0] & 0x09 == 0x09).all() and (shaded[1] != 0xFF).all()
    text = render([Trace([0, 1], [0, 0], FADED, upper=[1, 2]), Trace([0, 1], [1, 1], 39)], 30, 10)
    assert len(text.plain.split("\n")) == 10 and "2" in text.plain  # the band's top sets the scale
