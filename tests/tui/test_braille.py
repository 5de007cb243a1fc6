"""The braille chart renderer: where lines and markers land, colours, axes and ticks, and that
odd data (empty, non-finite, flat, one point) still draws a figure of exactly the asked size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.cells import cell_len
from rich.color import Color
from rich.text import Text

from optlab.runs.axes import format_number, log_ticks, nice_ticks, tick_labels
from optlab.runs.palette import FADED
from optlab.runs.series import Series
from optlab.tui.widgets.braille import Trace, rasterize, render
from optlab.tui.widgets.chart import Chart


def _arrays(*traces: Trace) -> list[tuple[np.ndarray, np.ndarray, int, str]]:
    return [(np.asarray(t.xs, float), np.asarray(t.ys, float), t.color, t.marker) for t in traces]


def _color_at(text: Text, index: int) -> int | None:
    """The 256-colour code of the character at `index` (the last span wins, as in rich)."""
    code = None
    for span in text.spans:
        color = getattr(span.style, "color", None)
        if span.start <= index < span.end and isinstance(color, Color):
            code = color.number
    return code


def _y_labels(lines: list[str]) -> dict[int, str]:
    """Plot row -> the y tick label on it (rows whose axis character is ┤)."""
    return {r: line.split("┤")[0].strip() for r, line in enumerate(lines[:-2]) if "┤" in line}


# ---------------------------------------------------------------- dots


def test_diagonal_lights_one_dot_per_dot_column_from_corner_to_corner() -> None:
    # 4x2 cells = 8x8 dots: the line from (0,0) to (1,1) is the dots (row 7 - i, column i).
    grid = rasterize(_arrays(Trace([0, 1], [0, 1], 39)), 4, 2, (0.0, 1.0), (0.0, 1.0))
    # Per cell: 0x40 (dot 7, bottom left) + 0x20 (dot 6, third row right) = ⡠; 0x02 + 0x08 = ⠊.
    assert grid.bits.tolist() == [[0, 0, 0x60, 0x0A], [0x60, 0x0A, 0, 0]]
    assert grid.bits[1, 0] & 0x40 and grid.bits[0, 3] & 0x08  # the two corner dots
    assert (grid.color >= 0).tolist() == [[False, False, True, True], [True, True, False, False]]
    # Below 4 rows render() draws the plot alone, so the same figure reads as text.
    assert render([Trace([0, 1], [0, 1], 39)], 4, 2).plain.split("\n") == ["  ⡠⠊", "⡠⠊  "]


def test_horizontal_line_lights_one_dot_row_across_the_plot() -> None:
    grid = rasterize(_arrays(Trace([0, 10], [1, 1], 39)), 10, 3, (0.0, 10.0), (0.0, 2.0))
    lit_rows = [r for r in range(3) if grid.bits[r].any()]
    assert lit_rows == [1]
    # 12 dot rows, y = 1 of 0..2 at dot row 5.5 -> 6: the third dot row of cell row 1 (⠤).
    assert grid.bits[1].tolist() == [0x04 | 0x20] * 10


def test_steep_segment_is_continuous() -> None:
    # A jump from bottom to top within one dot column must still light every dot row.
    grid = rasterize(_arrays(Trace([0, 1], [0, 100], 39)), 1, 5, (0.0, 1.0), (0.0, 100.0))
    assert all(grid.bits[r].any() for r in range(5))


def test_markers_sit_in_the_cell_of_their_point() -> None:
    text = render([Trace([0, 1, 2], [0, 1, 2], 42, "•")], 3, 3)
    assert text.plain.split("\n") == ["  •", " • ", "•  "]


# ---------------------------------------------------------------- colours and draw order


def test_last_drawn_series_wins_a_shared_cell() -> None:
    a, b = Trace([0, 1], [0, 1], 39), Trace([0, 1], [0, 1], 208)
    for first, second in ((a, b), (b, a)):
        text = render([first, second], 4, 2)
        lit = [i for i, ch in enumerate(text.plain) if ch not in " \n"]
        assert lit and {_color_at(text, i) for i in lit} == {second.color}
    # Apart, each keeps its own colour.
    text = render([Trace([0, 1], [0, 0], 39), Trace([0, 1], [1, 1], 208)], 6, 3)
    top, bottom = text.plain.split("\n")[0], text.plain.split("\n")[2]
    assert _color_at(text, top.index(top.strip()[0])) == 208
    assert _color_at(text, 2 * 7 + bottom.index(bottom.strip()[0])) == 39


def test_marker_and_line_overwrite_each_other_in_draw_order() -> None:
    line, dot = Trace([0, 2], [1, 1], 39), Trace([1], [1], 208, "•")
    assert "•" in render([line, dot], 3, 1).plain
    assert "•" not in render([dot, line], 3, 1).plain  # the later line hides the marker


def test_chart_draws_faded_series_first_and_band_bounds_under_the_means() -> None:
    chart = Chart("loss")
    same = ([0.0, 1.0], [0.0, 1.0])
    chart.series = [Series("mean", *same, 39), Series("upper", *same, 24, band="upper"), Series("other", *same, FADED)]
    text = chart.draw(30, 8)
    lit = [i for i, ch in enumerate(text.plain) if 0x2800 <= ord(ch) <= 0x28FF]
    assert lit and {_color_at(text, i) for i in lit} == {39}
    assert chart.plotted == [2, 2, 2] and chart.error == ""
    # Per-epoch series are markers; a band's bounds small dots.
    chart.series = [Series("v", [0.0, 1.0], [1.0, 2.0], 39, style="points"),
                    Series("b", [0.5], [1.5], 24, style="points", band="lower")]
    plain = chart.draw(30, 8).plain
    assert plain.count("•") == 2 and plain.count("·") == 1


def test_chart_downsamples_to_about_two_points_per_column() -> None:
    chart = Chart("loss")
    chart.series = [Series("a", list(range(20_000)), [float(i % 7) for i in range(20_000)], 39)]
    chart.draw(60, 12)
    assert chart.plotted[0] <= 2 * 60 + 2


# ---------------------------------------------------------------- axes and ticks


def test_log_scale_puts_decades_at_evenly_spaced_rows() -> None:
    text = render([Trace([0, 1, 2], [1, 10, 100], 39, "•")], 30, 11, log_y=True)
    lines = text.plain.split("\n")
    assert _y_labels(lines) == {0: "100", 4: "10", 8: "1"}
    marker_rows = [r for r, line in enumerate(lines) if "•" in line]
    assert marker_rows == [0, 4, 8]


def test_linear_y_ticks_are_nice_values_on_their_rows() -> None:
    lines = render([Trace([0, 1], [0, 1], 39)], 40, 12).plain.split("\n")
    labels = _y_labels(lines)
    assert list(labels.values()) == ["1", "0.5", "0"]
    assert min(labels) == 0 and max(labels) == 9  # 1 on the top row, 0 on the bottom one
    assert lines[-1].split() == ["0", "0.2", "0.4", "0.6", "0.8", "1"]  # no x label: room for 1


def test_x_axis_has_nice_ticks_and_ends_in_the_x_label() -> None:
    lines = render([Trace([0, 1000], [1, 2], 39)], 60, 10, x_label="step").plain.split("\n")
    axis, labels = lines[-2], lines[-1]
    assert axis.lstrip().startswith("└") and axis.count("┬") >= 3
    words = labels.split()
    assert words[-1] == "step"
    assert words[:-1] == ["0", "200", "400", "600", "800"]  # 1000 would run into "step"
    # Every label sits under its tick mark.
    for word in words[:-1]:
        start = labels.index(word)
        assert "┬" in axis[start : start + len(word)]


@pytest.mark.parametrize(
    ("lo", "hi", "count", "ticks"),
    [
        (0.0, 0.9, 5, [0.0, 0.2, 0.4, 0.6, 0.8]),
        (0.0, 1.0, 5, [0.0, 0.5, 1.0]),
        (1.2, 2.5, 5, [1.5, 2.0, 2.5]),
        (-3.0, 7.0, 5, [-2.0, 0.0, 2.0, 4.0, 6.0]),
        (0.001, 0.0042, 5, [0.001, 0.002, 0.003, 0.004]),
    ],
)
def test_nice_ticks_use_1_2_5_steps_inside_the_range(lo: float, hi: float, count: int, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi, count)[0] == pytest.approx(ticks)


def test_log_ticks_are_powers_of_ten_or_decade_spaced_values() -> None:
    assert log_ticks(-4, 0, 5) == pytest.approx([1e-4, 1e-3, 1e-2, 0.1, 1.0])
    assert log_ticks(-8, 3, 5) == pytest.approx([1e-6, 1e-3, 1.0, 1e3])  # every third decade
    assert log_ticks(math.log10(0.03), math.log10(2.2), 5) == pytest.approx([0.03, 0.1, 0.3, 1.0])
    assert log_ticks(math.log10(0.3), math.log10(2.5), 5) == pytest.approx([0.5, 1.0, 2.0])


def test_numbers_are_compact() -> None:
    assert [format_number(v) for v in (1e-3, 2.5e-4, 0.25, 1.0, 1200.0, 2.5e6, 0.0)] == [
        "1e-3", "2.5e-4", "0.25", "1", "1.2k", "2.5M", "0"
    ]
    # One notation per axis, with the digits that tell ticks apart.
    assert tick_labels([0.0, 0.005, 0.01, 0.015], 0.005) == ["0", "0.005", "0.01", "0.015"]
    assert tick_labels([0.0, 5000.0, 10000.0], 5000.0) == ["0", "5k", "10k"]
    assert tick_labels([0.0, 500.0, 1000.0], 500.0) == ["0", "500", "1000"]
    assert tick_labels([1000.2, 1000.4], 0.2) == ["1000.2", "1000.4"]


# ---------------------------------------------------------------- odd data, exact size


ODD_DATA = {
    "empty": [],
    "empty series": [Trace([], [], 39)],
    "non-finite": [Trace([math.nan, math.inf, 1.0, 2.0], [1.0, 2.0, math.nan, -math.inf], 39)],
    "one point": [Trace([5.0], [3.0], 39)],
    "flat": [Trace([0.0, 1.0, 2.0], [4.0, 4.0, 4.0], 39)],
    "zeros and negatives": [Trace([0.0, 1.0], [0.0, -1.0], 39)],
    "ragged": [Trace([0.0, 1.0, 2.0], [1.0], 39), Trace([0.0, 1.0], [0.1, 1e6], 208, "•")],
}


@pytest.mark.parametrize("log_y", [False, True])
@pytest.mark.parametrize("name", list(ODD_DATA))
@pytest.mark.parametrize(("width", "height"), [(1, 1), (5, 3), (8, 4), (12, 6), (60, 12), (190, 20)])
def test_any_data_renders_exactly_the_requested_size(name: str, log_y: bool, width: int, height: int) -> None:
    text = render(ODD_DATA[name], width, height, log_y=log_y, x_label="training time (s)")
    lines = text.plain.split("\n")
    assert len(lines) == height
    assert all(cell_len(line) == width for line in lines), lines


def test_empty_data_draws_an_empty_frame_with_the_x_label() -> None:
    lines = render([], 30, 8, x_label="epoch").plain.split("\n")
    assert all(line.startswith("│") and not line[1:].strip() for line in lines[:-2])
    assert lines[-2] == "└" + "─" * 29 and lines[-1].strip() == "epoch"
    assert render([], 0, 5).plain == ""


def test_flat_series_and_single_point_sit_mid_plot() -> None:
    lines = render([Trace([0.0, 1.0, 2.0], [4.0, 4.0, 4.0], 39)], 20, 3).plain.split("\n")
    assert [bool(line.strip()) for line in lines] == [False, True, False]
    lines = render([Trace([5.0], [3.0], 39)], 5, 3).plain.split("\n")
    assert [line.strip() != "" for line in lines] == [False, True, False] and lines[1][2] != " "
    # With axes, the flat value is labelled.
    assert "4" in _y_labels(render([Trace([0.0, 1.0], [4.0, 4.0], 39)], 30, 12).plain.split("\n")).values()
