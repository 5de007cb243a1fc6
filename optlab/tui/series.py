"""The series of the experiment screen's three charts, built from the experiment state.

Without repeated seeds: one series per run, in the run's colour (as it always was). With
repeated seeds (some configuration ran over more than one seed) and a band mode: one mean
series per configuration in its colour, plus the band's lower and upper bounds in a darker
shade of it; in the "seeds" mode each seed run as its own series, in its configuration's colour.
"""

from __future__ import annotations

from optlab.tui.seeds import BAND_LABELS, Band, Columns, band, dim_color
from optlab.tui.state import ExperimentState
from optlab.tui.widgets.chart import FADED, Series, run_color

CHARTS = ("loss", "lr", "val")


def run_series(state: ExperimentState, axis: str, smoothing: float, highlight: str | None) -> dict[str, list[Series]]:
    """One series per run (per chart); with repeats, coloured and highlighted by configuration."""
    grouping = state.grouping
    metric = state.val_key
    out: dict[str, list[Series]] = {key: [] for key in CHARTS}
    for name in state.run_names:
        key = grouping.key(name)
        color = FADED if highlight and key != highlight else run_color(grouping.color_index(name))
        # With repeats the legend names each configuration once; without, legend_label == label.
        entry = key if grouping.repeats else ""
        out["loss"].append(Series(name, *state.train_loss(name, axis, smoothing), color, run=name, legend_label=entry))
        out["loss"].append(
            Series(f"{name} val", *state.val_metric(name, axis, "val_loss"), color, run=name,
                   style="points", legend=False)
        )
        out["lr"].append(Series(name, *state.learning_rate(name, axis), color, run=name, legend_label=entry))
        out["val"].append(
            Series(name, *state.val_metric(name, axis, metric), color, run=name, style="points", legend_label=entry)
        )
    return out


def _by_step(state: ExperimentState, name: str, xy: tuple[list[float], list[float]]) -> Columns:
    """A per-interval series (training loss, learning rate) keyed by step."""
    return list(state.run_series(name).columns["step"]), xy[0], xy[1]


def _by_epoch(state: ExperimentState, name: str, axis: str, metric: str) -> Columns:
    series = state.run_series(name)
    points = [p for p in series.epochs if getattr(p, metric) is not None]
    return [p.epoch for p in points], [series.x_of(p, axis) for p in points], [getattr(p, metric) for p in points]


def _mean_and_band(
    label: str, group: str, data: Band, color: int, mode: str, style: str, legend: bool, bounds_style: str
) -> list[Series]:
    out = [Series(label, data.xs, data.mean, color, run=group, style=style, legend=legend)]
    # A faded configuration keeps only its mean (highlighting is for focus); one seed has no band.
    if color != FADED and data.spread:
        lower, upper = data.bounds(mode)
        shade = dim_color(color)
        out.insert(0, Series(f"{label} upper", data.xs, upper, shade, run=group, style=bounds_style,
                             legend=False, band="upper"))
        out.insert(0, Series(f"{label} lower", data.xs, lower, shade, run=group, style=bounds_style,
                             legend=False, band="lower"))
    return out


def group_series(
    state: ExperimentState, axis: str, smoothing: float, highlight: str | None, mode: str
) -> tuple[dict[str, list[Series]], dict[str, dict[str, Band]]]:
    """One mean series per configuration with its band, and the bands themselves (per chart
    key: "train_loss", "val_loss", "lr", the validation metric) for anyone who checks them.

    Per-interval values (training loss, learning rate) line up by step, per-epoch values by
    epoch. On the time axis a point sits at the mean of its seeds' training times. Smoothing
    applies to each seed's training loss before the statistics, so the band is the band of the
    curves shown in the "seeds" mode."""
    grouping = state.grouping
    metric = state.val_key
    out: dict[str, list[Series]] = {key: [] for key in CHARTS}
    bands: dict[str, dict[str, Band]] = {}
    for index, (group, names) in enumerate(grouping.groups.items()):
        color = FADED if highlight and group != highlight else run_color(index)
        train = band([_by_step(state, n, state.train_loss(n, axis, smoothing)) for n in names])
        lr = band([_by_step(state, n, state.learning_rate(n, axis)) for n in names])
        val_loss = band([_by_epoch(state, n, axis, "val_loss") for n in names])
        val = band([_by_epoch(state, n, axis, metric) for n in names])
        bands[group] = {"train_loss": train, "lr": lr, "val_loss": val_loss, metric: val}
        out["loss"] += _mean_and_band(group, group, train, color, mode, "line", True, "line")
        # Validation loss shares the loss chart with the training band: its bounds are dots,
        # so four more lines do not bury the training curves.
        out["loss"] += _mean_and_band(f"{group} val", group, val_loss, color, mode, "points", False, "points")
        out["lr"] += _mean_and_band(group, group, lr, color, mode, "line", True, "line")
        out["val"] += _mean_and_band(group, group, val, color, mode, "points", True, "line")
    return out, bands


def chart_note(state: ExperimentState, mode: str) -> str:
    """The charts' subtitle: what a line is, when seeds are repeated ("" otherwise)."""
    if not state.grouping.repeats:
        return ""
    if mode == "seeds":
        return "each seed, coloured by configuration"
    return f"mean over seeds · band {BAND_LABELS[mode]}"
