"""Repeated seeds in the TUI: mean + band charts, the configurations table with the ranking
verdict, and the save-preset key. The first test trains a real (tiny) seeded experiment."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import OptionList
from tui.helpers import wait_for_the_end

from optlab.preset.loader import load_preset
from optlab.runs.aggregate import aggregate, stats
from optlab.runs.formatting import format_rate, header
from optlab.runs.grouping import Grouping, band
from optlab.runs.palette import FADED, dim_color, run_color
from optlab.runs.seed_reports import compact_mean_std, mean_std
from optlab.runs.series import Series
from optlab.runs.store import read_events
from optlab.training.events import EpochEnded, ExperimentStarted, Progress, RunEnded, RunStarted
from optlab.tui.app import OptlabApp
from optlab.tui.screens.experiment import ExperimentScreen
from optlab.tui.screens.start import StartScreen
from optlab.tui.state import ExperimentState
from optlab.tui.widgets.chart import Chart
from optlab.tui.widgets.seeds_table import VERDICT_STYLES, RankingLine, SeedsTable

SEEDED = """name = "tiny-seeds"
description = "TUI seeds test preset"

[data]
dataset = "digits"

[model]
name = "mlp"
hidden = [16]

[train]
epochs = 2
batch_size = 64
seeds = [0, 1, 2]

[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }

[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""
GROUPS = ["sgd", "adam"]


def _dumps(runs: list[Any]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in runs]


def _per_seed(results: dict[str, Any], group: str, key: str) -> np.ndarray:
    """seeds x epochs array of one history value of a configuration, from results.json."""
    runs = [r for r in results["runs"] if r["config"]["group"] == group]
    return np.array([[h[key] for h in r["history"]] for r in runs], dtype=float)


def _parts(chart: Chart, group: str) -> dict[str, Series]:
    """A configuration's mean and band series in a chart ("" is the mean; per-epoch validation
    loss in the loss chart is left out)."""
    return {s.band: s for s in chart.series if s.run == group and not s.label.endswith(("val", "val lower", "val upper"))}


def test_seeded_experiment_charts_tables_and_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "user-presets"
    monkeypatch.setenv("OPTLAB_PRESETS", str(user))
    asyncio.run(_seeded(tmp_path, user))


async def _seeded(tmp_path: Path, user: Path) -> None:
    preset = tmp_path / "seeds.toml"
    preset.write_text(SEEDED)
    run_dir = tmp_path / "run"
    app = OptlabApp(preset=str(preset), out=run_dir, device="cpu")
    async with app.run_test(size=(140, 45)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_for_the_end(pilot, app, screen, "the final tables")
        assert app.process is not None and app.process.poll() == 0
        screen.update_charts()
        await pilot.pause(0.2)
        results = json.loads((run_dir / "results.json").read_text())
        assert [r["status"] for r in results["runs"]] == ["finished"] * 6

        # ---- one mean series per configuration in each chart, in the configuration's colour,
        # with its band's two bounds in a darker shade of it
        loss, lr, val = screen.chart("loss"), screen.chart("lr"), screen.chart("val")
        for chart in (loss, lr, val):
            assert [s.label for s in chart.series if s.legend] == GROUPS
            assert chart.error == "" and "band min–max" in str(chart.border_subtitle)
            for index, group in enumerate(GROUPS):
                parts = _parts(chart, group)
                assert set(parts) == {"", "lower", "upper"}
                assert parts[""].color == run_color(index)
                assert parts["lower"].color == parts["upper"].color == dim_color(run_color(index)) != run_color(index)
        assert "sgd@s0" not in str(val.legend.content) and "sgd" in str(val.legend.content)

        # ---- per-epoch bands equal numpy over the seeds' histories in results.json
        for group in GROUPS:
            acc = _per_seed(results, group, "val_accuracy")
            vloss = _per_seed(results, group, "val_loss")
            assert acc.shape == (3, 2)
            parts = _parts(val, group)
            assert len(parts[""].ys) == 2 and list(parts[""].xs) == [float(s) for s in (18, 36)]
            assert list(parts[""].ys) == pytest.approx(acc.mean(axis=0), rel=1e-12)
            assert list(parts["lower"].ys) == pytest.approx(acc.min(axis=0), rel=1e-12)
            assert list(parts["upper"].ys) == pytest.approx(acc.max(axis=0), rel=1e-12)
            (vmean,) = [s for s in loss.series if s.label == f"{group} val"]
            assert vmean.style == "points" and list(vmean.ys) == pytest.approx(vloss.mean(axis=0), rel=1e-12)
            (vlow,) = [s for s in loss.series if s.label == f"{group} val lower"]
            assert list(vlow.ys) == pytest.approx(vloss.min(axis=0), rel=1e-12)
            # the same numbers as results.json's own aggregates
            (agg,) = [g for g in results["aggregates"]["groups"] if g["group"] == group]
            assert list(parts[""].ys) == pytest.approx([b["mean"] for b in agg["history"]["val_accuracy"]], rel=1e-12)

        # ---- per-interval training loss: mean over the seeds at each step
        events = read_events(run_dir).events
        for group in GROUPS:
            per_seed = [[e for e in events if isinstance(e, Progress) and e.run == f"{group}@s{s}"] for s in range(3)]
            steps = [e.step for e in per_seed[0]]
            assert all([e.step for e in seed] == steps for seed in per_seed)  # seeds line up by step
            ys = np.array([[e.train_loss for e in seed] for seed in per_seed])
            parts = _parts(loss, group)
            assert list(parts[""].xs) == [float(s) for s in steps]
            assert list(parts[""].ys) == pytest.approx(ys.mean(axis=0), rel=1e-12)
            assert list(parts["upper"].ys) == pytest.approx(ys.max(axis=0), rel=1e-12)
            assert len(_parts(lr, group)[""].ys) == len(steps)

        # ---- `b`: min-max -> mean ± std -> each seed -> min-max, and the chart changes
        drawn = val.drawn
        await pilot.press("b")
        await pilot.pause(0.2)
        assert screen.band_mode == "std" and "band mean ± std" in str(screen.query_one("#status").content)
        for group in GROUPS:
            acc = _per_seed(results, group, "val_accuracy")
            mean, std = acc.mean(axis=0), acc.std(axis=0, ddof=1)
            parts = _parts(val, group)
            assert list(parts["lower"].ys) == pytest.approx(mean - std, rel=1e-12)
            assert list(parts["upper"].ys) == pytest.approx(mean + std, rel=1e-12)
        assert val.drawn != drawn and "mean ± std" in str(val.border_subtitle)
        await pilot.press("b")
        await pilot.pause(0.2)
        assert screen.band_mode == "seeds"
        assert [s.run for s in val.series] == [r["name"] for r in results["runs"]]
        assert {s.color for s in val.series if s.run.startswith("adam@")} == {run_color(1)}
        assert not any(s.band for s in val.series)
        assert "sgd@s1" not in str(val.legend.content)  # one legend entry per configuration
        await pilot.press("b")
        assert screen.band_mode == "minmax"

        # ---- the configurations table (shown first) equals aggregate() on results.json
        table = screen.seeds_table
        assert screen.tables.view == "groups" and table.display and not screen.final_table.display
        expected = aggregate(results)
        assert expected is not None
        # 140 columns: the table fits them (compact cells, the least telling columns named under
        # it) and keeps the time in view.
        shown = {str(key.value) for key in table.columns}
        assert {"accuracy", "test_loss", "wall_time_s"} <= shown
        form = compact_mean_std if table.compact else mean_std
        for group in expected["groups"]:
            name = group["group"]
            assert table.cell_text(name, "n") == str(group["n"]) == "3"
            if "seeds" in shown:
                assert table.cell_text(name, "seeds") == "0, 1, 2"
            for column in ("accuracy", "f1", "roc_auc", "test_loss"):
                if column not in shown:
                    continue
                stat = group["test"]["loss" if column == "test_loss" else column]
                assert table.cell_text(name, column) == form(stat, column)
                assert "±" in table.cell_text(name, column)
            acc = [r["test"]["accuracy"] for r in results["runs"] if r["config"]["group"] == name]
            assert table.cell_text(name, "accuracy").startswith(f"{np.mean(acc):.4f}")
        best = max(expected["groups"], key=lambda g: g["test"]["accuracy"]["mean"])["group"]
        assert "green" in str(table.get_cell(best, "accuracy").style)
        ranking = str(screen.query_one("#ranking").content)
        assert ranking.splitlines()[0] == f"ranking: {expected['ranking']['text']}"
        assert ("hidden for width" in ranking) == bool(table.hidden)
        assert expected["ranking"]["verdict"] in ranking  # e.g. "not distinguishable"

        # ---- `h` on a configuration highlights it: the other keeps only a grey mean
        await pilot.press("h")
        assert screen.highlight == "sgd"
        assert {s.color for s in val.series if s.run == "adam"} == {FADED}
        assert set(_parts(val, "sgd")) == {"", "lower", "upper"} and set(_parts(val, "adam")) == {""}
        await pilot.press("h")
        assert screen.highlight is None

        # ---- `t` cycles configurations -> per-seed final table -> runs table; swatches by configuration
        await pilot.press("t")
        assert screen.tables.view == "final" and screen.final_table.row_count == 6
        await pilot.press("t")
        assert screen.tables.view == "runs"
        assert "color(208)" in str(screen.runs_table.get_cell("adam@s2", "swatch").style)
        await pilot.press("t")
        assert screen.tables.view == "groups"
        await pilot.press("down", "enter")  # Enter on a configuration: its seeds in the final table
        assert screen.tables.view == "final" and screen.selected() == "adam@s0"

        # ---- `w` saves the experiment as a user preset that loads to the same runs
        await pilot.press("w")
        saved = user / "tiny-seeds.toml"
        assert screen.saved_presets == [saved] and saved.is_file()
        assert _dumps(load_preset(str(saved)).resolved_runs()) == _dumps(load_preset(str(preset)).resolved_runs())
        await pilot.press("q")


# ---------------------------------------------------------------- the save key, without training


def test_save_key_writes_a_user_preset_the_start_screen_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optlab.cli.common import preset_toml  # what `optlab compare` writes as DIR/preset.toml

    user = tmp_path / "user-presets"
    monkeypatch.setenv("OPTLAB_PRESETS", str(user))
    monkeypatch.chdir(tmp_path)  # no ./presets
    preset = tmp_path / "my-exp.toml"
    preset.write_text(SEEDED.replace('"tiny-seeds"', '"my-exp.v1"'))
    overrides = ["train.epochs=1", "runs.adam.optimizer.lr=0.003"]
    loaded = load_preset(str(preset), overrides, seeds=2)
    run_dir = tmp_path / "runs" / "20260101-120000-my-exp"
    run_dir.mkdir(parents=True)
    (run_dir / "preset.toml").write_text(preset_toml(loaded.preset))
    asyncio.run(_save(run_dir, user, loaded.resolved_runs(), monkeypatch))


async def _save(run_dir: Path, user: Path, runs: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await pilot.press("w")
        await pilot.press("w")  # the same experiment again: a second file, nothing overwritten
        first, second = user / "my-exp.v1.toml", user / "my-exp.v1-2.toml"  # never one over another
        assert screen.saved_presets == [first, second]
        assert first.read_text().startswith("# Saved from the optlab TUI")
        for path in (first, second):
            loaded = load_preset(str(path))  # by path, and by name as any preset
            assert loaded.preset.name == path.stem
            assert _dumps(loaded.resolved_runs()) == _dumps(runs)  # overrides and --seeds kept
            assert load_preset(path.stem).path == path
        assert [r.name for r in runs] == ["sgd@s0", "sgd@s1", "adam@s0", "adam@s1"]
        assert runs[2].optimizer.lr == 0.003 and runs[0].epochs == 1
        await pilot.press("q")

    started: list[str] = []
    start_app = OptlabApp(runs_base=run_dir.parent)
    monkeypatch.setattr(start_app, "start_experiment", lambda preset, *a, **k: started.append(preset))
    async with start_app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        start = start_app.screen
        assert isinstance(start, StartScreen)
        listed = {s.name: s for s in start.presets}
        assert listed["my-exp.v1"].origin == "user" and listed["my-exp.v1-2"].origin == "user"
        options = start.query_one("#presets", OptionList)
        index = [s.name for s in start.presets].index("my-exp.v1")
        assert "my-exp.v1" in str(options.get_option_at_index(index).prompt)
        options.highlighted = index
        await pilot.pause()
        assert "seeds 0, 1" in str(start.query_one("#preset-info").content)
        await pilot.press("enter")
        assert started == [str(user / "my-exp.v1.toml")]
        await pilot.press("q")


def test_a_saved_preset_never_shadows_a_known_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optlab.preset.export import safe_stem, save_to_user_dir

    user = tmp_path / "user"
    monkeypatch.setenv("OPTLAB_PRESETS", str(user))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "preset.toml").write_text(SEEDED.replace('"tiny-seeds"', '"quickstart"'))
    path = save_to_user_dir(run_dir)
    assert path == user / "quickstart-2.toml"  # `optlab compare quickstart` still means the bundled one
    assert load_preset("quickstart").path != path
    assert safe_stem("../../etc/passwd") == "etc-passwd" and safe_stem("  ") == "preset"


# ---------------------------------------------------------------- the parts


def test_band_statistics_match_numpy_and_the_results_aggregates() -> None:
    nan = math.nan
    runs = [
        ([1, 2, 3], [10.0, 20.0, 30.0], [1.0, 2.0, 4.0]),
        ([1, 2], [12.0, 22.0], [3.0, nan]),  # diverged at 2, gone after
        ([3, 1, 2], [34.0, 14.0, 24.0], [6.0, 8.0, 5.0]),  # aligned by key, not by position
    ]
    out = band(runs)
    assert out.xs == [12.0, 22.0, 32.0] and out.n == [3, 2, 2]
    for i, values in enumerate(([1.0, 3.0, 8.0], [2.0, 5.0], [4.0, 6.0])):
        expected = stats(values)  # the function results.json's aggregates use
        assert out.mean[i] == pytest.approx(np.mean(values)) == pytest.approx(expected["mean"])
        assert out.std[i] == pytest.approx(np.std(values, ddof=1)) == pytest.approx(expected["std"])
        assert (out.min[i], out.max[i]) == (min(values), max(values))
    lower, upper = out.bounds("std")
    assert lower[0] == pytest.approx(out.mean[0] - out.std[0]) and upper[2] == pytest.approx(5.0 + math.sqrt(2))
    one = band([([1], [1.0], [2.0])])
    assert one.n == [1] and math.isnan(one.std[0]) and not one.spread
    assert band([]).xs == [] and band([([], [], [])]).mean == []


def test_grouping_without_repeats_keeps_one_colour_per_run() -> None:
    plain = {"runs": [{"name": "a", "config": {"group": "a"}}, {"name": "b", "config": {"group": "b"}}]}
    grouping = Grouping.from_doc(plain)
    assert not grouping.repeats and grouping.key("b") == "b" and grouping.color_index("b") == 1
    seeded = {"runs": [{"name": f"{g}@s{s}"} for g in ("x", "y") for s in (0, 1)]}  # not started: names tell
    grouping = Grouping.from_doc(seeded)
    assert grouping.repeats and grouping.key("y@s1") == "y" and grouping.color_index("y@s0") == 1
    assert grouping.first_run("y") == "y@s0"
    assert dim_color(39) == 24 and dim_color(FADED) == 238


def _doc(accuracies: dict[str, list[float]]) -> dict[str, Any]:
    runs = [
        {"name": f"{g}@s{s}", "status": "finished", "config": {"group": g, "seed": s},
         "test": {"accuracy": a, "loss": 1.0 - a}, "wall_time_s": 1.0, "best_epoch": 1, "history": []}
        for g, values in accuracies.items() for s, a in enumerate(values)
    ]
    return {"dataset": {"task": "multiclass"}, "runs": runs}


class TablesApp(App[None]):
    def compose(self) -> ComposeResult:
        yield SeedsTable(id="t")
        yield RankingLine(id="r")


@pytest.mark.parametrize(
    ("accuracies", "verdict"),
    [
        ({"a": [0.90, 0.95, 0.85], "b": [0.91, 0.86, 0.93]}, "not distinguishable"),
        ({"a": [0.90, 0.91, 0.92], "b": [0.50, 0.51, 0.52]}, "distinguishable"),
        ({"a": [0.90, 0.91], "b": [0.5]}, "cannot tell"),
    ],
)
def test_configurations_table_shows_the_ranking_verdict(accuracies: dict[str, list[float]], verdict: str) -> None:
    asyncio.run(_tables(_doc(accuracies), verdict))


async def _tables(doc: dict[str, Any], verdict: str) -> None:
    app = TablesApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table, line = app.query_one(SeedsTable), app.query_one(RankingLine)
        table.show(doc)
        line.show(doc)
        await pilot.pause()
        text = line.content
        assert isinstance(text, Text) and text.plain.startswith("ranking: ")
        assert f": {verdict} " in text.plain  # ": distinguishable " is not in ": not distinguishable "
        assert VERDICT_STYLES[verdict] in {str(span.style) for span in text.spans}
        for group in ("a", "b"):
            values = [r["test"]["accuracy"] for r in doc["runs"] if r["config"]["group"] == group]
            assert table.cell_text(group, "n") == str(len(values))
            expected = f"{np.mean(values):.4f}" + (f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")
            assert table.cell_text(group, "accuracy") == expected
        # ranking order first, with the rank: "1=" not distinguishable from 1, "2?" too few seeds
        means = {g: float(np.mean([r["test"]["accuracy"] for r in doc["runs"] if r["config"]["group"] == g]))
                 for g in ("a", "b")}
        top, second = sorted(means, key=means.get, reverse=True)
        rows = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]
        assert rows == [top, second] and table.cell_text(top, "rank") == "1"
        expected_rank = {"distinguishable": "2", "not distinguishable": "1=", "cannot tell": "2?"}[verdict]
        assert table.cell_text(second, "rank") == expected_rank
        table.cycle_sort(doc)  # by rank (the order it has)
        table.cycle_sort(doc)  # by configuration name
        table.cycle_sort(doc)  # by accuracy, best first
        assert table.sort_column == "accuracy"
        first = str(table.coordinate_to_cell_key((0, 0)).row_key.value)
        assert first == max(("a", "b"), key=lambda g: float(np.mean(
            [r["test"]["accuracy"] for r in doc["runs"] if r["config"]["group"] == g])))


def _full_doc() -> dict[str, Any]:
    """Three configurations over three seeds with every classification metric, as a real
    experiment reports them (the table that overflowed 160 columns)."""
    rng = np.random.default_rng(0)
    runs = []
    for g in ("sgd-momentum-cosine", "adam-bs128", "rmsprop"):
        for s in range(3):
            test = {m: float(rng.uniform(0.90, 0.99)) for m in ("accuracy", "precision", "recall", "f1",
                                                               "specificity", "roc_auc")}
            runs.append({"name": f"{g}@s{s}", "status": "finished", "config": {"group": g, "seed": s},
                         "test": {**test, "loss": float(rng.uniform(0.1, 0.3))}, "wall_time_s": 12.0 + s,
                         "best_epoch": 5, "history": []})
    return {"dataset": {"task": "multiclass"}, "runs": runs}


@pytest.mark.parametrize("width", [80, 120, 160])
def test_configurations_table_fits_the_terminal_and_names_what_it_hides(width: int) -> None:
    asyncio.run(_fits(width))


async def _fits(width: int) -> None:
    doc = _full_doc()
    app = TablesApp()
    async with app.run_test(size=(width, 20)) as pilot:
        table, line = app.query_one(SeedsTable), app.query_one(RankingLine)
        table.show(doc)
        line.show(doc, table.hidden)
        await pilot.pause()
        shown = [str(key.value) for key in table.columns]
        used = sum(column.get_render_width(table) for column in table.columns.values())
        assert used <= width, (used, shown)
        assert {"rank", "group", "accuracy", "wall_time_s"} <= set(shown)  # time is never cut off
        assert set(shown) | set(table.hidden) == set(table.cols)
        if width < 160:
            assert table.hidden and "hidden for width: " in line.content.plain
            for column in table.hidden:
                assert header(column) in line.content.plain
            assert "±" in table.cell_text("rmsprop", "accuracy") and " ± " not in table.cell_text("rmsprop", "accuracy")
        if width == 160:
            assert set(table.hidden) <= {"seeds", "specificity"}


# ---------------------------------------------------------------- the live configurations table


def _live_events() -> tuple[list[Any], dict[str, list[float]]]:
    """Two configurations x three seeds mid-training: adam's seeds have done 2 epochs, sgd's
    seeds 1 or 2 (one of them diverged after its first); returns the events and each
    configuration's per-seed best validation accuracies."""
    names = [f"{g}@s{s}" for g in ("sgd", "adam") for s in range(3)]
    events: list[Any] = [ExperimentStarted(run="", dataset={"task": "multiclass"}, run_names=names)]
    accuracies = {
        "sgd@s0": [0.50, 0.70], "sgd@s1": [0.55], "sgd@s2": [0.60, 0.58],
        "adam@s0": [0.80, 0.90], "adam@s1": [0.85, 0.84], "adam@s2": [0.70, 0.95],
    }
    for name in names:
        group, seed = name.split("@s")
        events.append(RunStarted(run=name, spec={"group": group, "seed": int(seed), "epochs": 4},
                                 steps_per_epoch=10, total_steps=40))
        for epoch, acc in enumerate(accuracies[name], start=1):
            events.append(EpochEnded(run=name, epoch=epoch, step=10 * epoch, val_loss=1 - acc, val_accuracy=acc))
        events.append(Progress(run=name, step=10 * len(accuracies[name]) + 3, epoch=len(accuracies[name]) + 1,
                               samples_per_s=1000.0 * (1 + int(seed))))
    events.append(RunEnded(run="sgd@s1", status="diverged", epochs_completed=1))
    best = {g: [max(accuracies[f"{g}@s{s}"]) for s in range(3)] for g in ("sgd", "adam")}
    return events, best


def test_live_configurations_table_shows_mean_std_and_n_while_training() -> None:
    asyncio.run(_live())


async def _live() -> None:
    events, best = _live_events()
    state = ExperimentState()
    state.apply(events)
    app = TablesApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(SeedsTable)
        table.show_live(state)
        await pilot.pause()
        assert [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)] == ["sgd", "adam"]
        for group, values in best.items():
            assert table.cell_text(group, "n") == "3"  # every seed has a validation value
            assert table.cell_text(group, "seeds") == "0, 1, 2"
            assert table.cell_text(group, "best") == f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"
        assert table.cell_text("adam", "epoch") == "3/4"
        assert table.cell_text("sgd", "epoch") == "1–3/4"  # a diverged seed stopped at epoch 1
        assert table.cell_text("sgd", "status") == "2 running, 1 diverged"
        assert table.cell_text("sgd", "rate") == format_rate(2000.0)  # the running seeds' mean: (1000 + 3000) / 2
        assert table.sortable_columns() == []  # rows stay put under the cursor while training


def test_t_shows_the_configurations_while_seeds_train(tmp_path: Path) -> None:
    asyncio.run(_t_live(tmp_path))


async def _t_live(tmp_path: Path) -> None:
    events, _ = _live_events()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = [json.dumps(event.to_dict()) for event in events]  # what a training child writes
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await pilot.pause(0.3)
        assert screen.state.events_seen == len(events) and screen.tables.views == ("runs", "groups")
        await pilot.press("t")
        assert screen.tables.view == "groups" and screen.seeds_table.display
        assert not screen.query_one("#ranking").display  # no verdict before the end
        assert screen.seeds_table.cell_text("adam", "n") == "3"
        await pilot.press("enter")  # a configuration: its first seed in the runs table
        assert screen.tables.view == "runs" and screen.selected() == "sgd@s0"
        await pilot.press("t", "t")
        assert screen.tables.view == "runs"  # runs -> groups -> runs: no final table yet
        await pilot.press("q")
