"""The experiment screen driven by Pilot on a real (tiny) experiment, from start to final table."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

from textual.widgets import Static
from tui.helpers import wait_for_the_end, wait_until

from optlab.runs.formatting import format_value
from optlab.runs.palette import FADED
from optlab.runs.reports import columns, summary_rows
from optlab.runs.store import read_events
from optlab.training.events import EpochEnded, Progress
from optlab.tui.app import OptlabApp
from optlab.tui.screens.details import DetailsScreen
from optlab.tui.screens.experiment import ExperimentScreen

RUNS = ["sgd", "adam", "rms-bs32"]


def _points(run_dir: Path) -> tuple[dict[str, list[Progress]], dict[str, list[EpochEnded]]]:
    events = read_events(run_dir).events
    progress = {n: [e for e in events if isinstance(e, Progress) and e.run == n] for n in RUNS}
    epochs = {n: [e for e in events if isinstance(e, EpochEnded) and e.run == n] for n in RUNS}
    return progress, epochs


def test_tiny_experiment_to_the_final_table(tiny: Path, tmp_path: Path) -> None:
    asyncio.run(_to_the_final_table(tiny, tmp_path))


async def _to_the_final_table(tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    app = OptlabApp(preset=str(tiny), out=run_dir, device="cpu")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_for_the_end(pilot, app, screen, "the final table")
        assert app.process is not None and app.process.poll() == 0
        screen.update_charts()  # the throttle may hold the last data back for up to 0.5 s
        await pilot.pause(0.2)

        # ---- the same run directory as `optlab compare`
        results = json.loads((run_dir / "results.json").read_text())
        assert results["status"] == "finished"
        assert [r["status"] for r in results["runs"]] == ["finished"] * 3
        for name in ("report.md", "metrics.csv", "preset.toml"):
            assert (run_dir / name).is_file(), name
        for name in RUNS:
            assert (run_dir / "runs" / name / "predictions.npz").is_file()

        # ---- one series per run in each chart, with every point of the event log
        progress, epochs = _points(run_dir)
        assert all(len(epochs[n]) == 2 for n in RUNS)
        loss, lr, val = screen.chart("loss"), screen.chart("lr"), screen.chart("val")
        for chart in (loss, lr, val):
            assert [s.label for s in chart.series if s.legend] == RUNS
            assert chart.error == ""
        for name in RUNS:
            (train,) = [s for s in loss.series if s.run == name and s.legend]
            (val_loss,) = [s for s in loss.series if s.run == name and not s.legend]
            assert list(train.xs) == [float(e.step) for e in progress[name]]
            assert list(train.ys) == [e.train_loss for e in progress[name]]
            assert list(val_loss.ys) == [e.val_loss for e in epochs[name]]
            (lr_s,) = [s for s in lr.series if s.run == name]
            assert list(lr_s.ys) == [e.lr for e in progress[name]]
            (acc,) = [s for s in val.series if s.run == name]
            assert list(acc.ys) == [e.val_accuracy for e in epochs[name]]
            assert list(acc.xs) == [float(e.step) for e in epochs[name]]
        # the batch-32 run reports twice as many steps as the batch-64 ones
        assert progress["rms-bs32"][-1].step == 2 * progress["sgd"][-1].step
        # colours: one per run, the same in every chart
        colours = [s.color for s in loss.series if s.legend]
        assert len(set(colours)) == 3
        assert [s.color for s in lr.series] == colours
        assert all(name in str(loss.legend.content) for name in RUNS)

        # ---- the final table equals results.json, best of each column highlighted
        table = screen.final_table
        rows = {r["name"]: r for r in summary_rows(results)}
        cols = columns("multiclass")
        assert table.row_count == 3
        for name in RUNS:
            for column in cols:
                assert table.cell_text(name, column) == format_value(column, rows[name][column]), (name, column)
            acc_cell = float(table.cell_text(name, "accuracy"))
            assert math.isclose(acc_cell, results["runs"][RUNS.index(name)]["test"]["accuracy"], abs_tol=5e-5)
        best = max(RUNS, key=lambda n: rows[n]["accuracy"])
        assert "green" in str(table.get_cell(best, "accuracy").style)
        worst = min(RUNS, key=lambda n: rows[n]["accuracy"])
        if rows[worst]["accuracy"] < rows[best]["accuracy"]:
            assert "green" not in str(table.get_cell(worst, "accuracy").style)

        # ---- sorting: `o` cycles the sort column (name, then accuracy, best first)
        await pilot.press("o")
        assert table.sort_column == "name"
        await pilot.press("o")
        assert table.sort_column == "accuracy"
        order = [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(3)]
        assert order == sorted(RUNS, key=lambda n: -rows[n]["accuracy"])
        await pilot.press("o")  # a second sort column keeps the numbers in place
        assert table.cell_text("sgd", "f1") == format_value("f1", rows["sgd"]["f1"])

        # ---- chart keys change the chart
        drawn = loss.drawn
        # sgd's 0.05 and adam's 1e-3 span more than a decade: the rate chart is log by itself.
        assert lr.log_y and not loss.log_y
        await pilot.press("l")
        await pilot.pause(0.2)
        assert loss.log_y and lr.log_y and loss.error == "" and loss.drawn != drawn
        await pilot.press("x")  # step -> epoch
        await pilot.pause(0.2)
        assert screen.x_axis == "epoch" and loss.x_label == "epoch"
        (train,) = [s for s in loss.series if s.run == "sgd" and s.legend]
        assert max(train.xs) == 2.0 and [float(p) for p in [s for s in val.series if s.run == "sgd"][0].xs] == [1.0, 2.0]
        await pilot.press("x")  # samples seen: the batch-32 run lines up with the others
        (rms,) = [s for s in loss.series if s.run == "rms-bs32" and s.legend]
        (sgd,) = [s for s in loss.series if s.run == "sgd" and s.legend]
        assert screen.x_axis == "samples" and max(rms.xs) == max(sgd.xs) == progress["sgd"][-1].samples_seen
        await pilot.press("x")  # training time
        (sgd,) = [s for s in loss.series if s.run == "sgd" and s.legend]
        assert screen.x_axis == "time" and list(sgd.xs) == [e.elapsed_s for e in progress["sgd"]]
        await pilot.press("x")
        assert screen.x_axis == "step"
        await pilot.press("l")
        assert not loss.log_y and lr.log_y

        # smoothing: debiased EMA, the first point stays the raw value
        await pilot.press("s")
        (sgd,) = [s for s in loss.series if s.run == "sgd" and s.legend]
        raw = [e.train_loss for e in progress["sgd"]]
        assert screen.smoothing == 0.6
        assert sgd.ys[0] == raw[0] and list(sgd.ys) != raw
        assert math.isclose(sgd.ys[1], (0.6 * 0.4 * raw[0] + 0.4 * raw[1]) / (1 - 0.6**2))
        await pilot.press("s", "s")
        assert screen.smoothing == 0.0

        # highlight: the selected run keeps its colour, the others fade
        await pilot.press("h")
        selected = screen.selected()
        assert screen.highlight == selected
        assert {s.run for s in lr.series if s.color != FADED} == {selected}
        await pilot.press("h")
        assert screen.highlight is None

        # layout: follows the terminal size (one chart at 80x24) until chosen with `c`
        assert screen.layout_mode == "grid"
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert screen.layout_mode == "loss" and not lr.display
        await pilot.resize_terminal(160, 50)
        await pilot.pause(0.2)
        assert screen.layout_mode == "grid" and lr.display
        modes = []
        for _ in range(4):
            await pilot.press("c")
            modes.append(screen.layout_mode)
        assert modes == ["loss", "lr", "val", "grid"]
        await pilot.resize_terminal(80, 24)  # too small for three charts: `c` skips the grid
        await pilot.pause(0.2)
        modes = []
        for _ in range(4):
            await pilot.press("c")
            modes.append(screen.layout_mode)
        assert modes == ["loss", "lr", "val", "loss"]
        await pilot.resize_terminal(160, 50)
        await pilot.pause(0.2)

        # ---- the training child wrote the charts and report.html; `r` writes them again
        assert (run_dir / "report.html").is_file() and (run_dir / "charts" / "loss.svg").is_file()
        (run_dir / "report.html").unlink()
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.report_path is not None, 30, "report.html")
        assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")

        # ---- Enter opens the selected run's details
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailsScreen), 5, "details")
        details = app.screen
        assert isinstance(details, DetailsScreen)
        run = results["runs"][RUNS.index(details.run_doc["name"])]
        assert details.run_doc["init_fingerprint"] == run["init_fingerprint"]
        summary = str(details.query_one("#details-summary", Static).content)
        assert run["init_fingerprint"] in summary and run["data_fingerprint"] in summary
        assert len(details.query(".details-table")) == 2  # per class, confusion matrix
        await pilot.press("escape")
        assert app.screen is screen

        # ---- nothing runs any more: q quits at once, code 0
        await pilot.press("q")
        await pilot.pause(0.2)
    assert app.return_code in (None, 0)

    # ---- `optlab view` of the finished directory: the same final table at once, q leaves
    viewer = OptlabApp(view=run_dir)
    async with viewer.run_test(size=(100, 30)) as pilot:
        view = viewer.screen
        assert isinstance(view, ExperimentScreen)
        await wait_until(pilot, lambda: view.showing_final, 10, "the final table of a finished run")
        assert not view.live
        for name in RUNS:
            assert view.final_table.cell_text(name, "f1") == format_value("f1", rows[name]["f1"])
        await pilot.press("q")
        await wait_until(pilot, lambda: viewer.return_code is not None, 5, "q to quit without asking")


REGRESSION = """name = "tiny-regression"
[data]
dataset = "diabetes"
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 3
batch_size = 32
seed = 0
[[runs]]
name = "adam"
loss = "mse"
optimizer = { name = "adam", lr = 3e-3 }
[[runs]]
name = "blow-up"
loss = "l1"
optimizer = { name = "sgd", lr = 1e6 }
"""


def test_regression_and_a_diverged_run(tmp_path: Path) -> None:
    asyncio.run(_regression(tmp_path))


async def _regression(tmp_path: Path) -> None:
    preset = tmp_path / "reg.toml"
    preset.write_text(REGRESSION)
    run_dir = tmp_path / "run"
    app = OptlabApp(preset=str(preset), out=run_dir, device="cpu")
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_for_the_end(pilot, app, screen, "the final table")
        results = json.loads((run_dir / "results.json").read_text())
        status = {r["name"]: r["status"] for r in results["runs"]}
        assert status == {"adam": "finished", "blow-up": "diverged"}
        table = screen.final_table
        cols = columns("regression")
        assert "rmse" in cols and "accuracy" not in cols
        rows = {r["name"]: r for r in summary_rows(results)}
        for name in status:
            for column in cols:
                assert table.cell_text(name, column) == format_value(column, rows[name][column]), (name, column)
        assert "red" in str(table.get_cell("blow-up", "status").style)
        # runs train with different losses (mse, l1): they are compared on validation RMSE
        assert screen.chart("val").title == "validation RMSE"
        assert str(screen.runs_table.columns["best"].label) == "best val rmse"  # type: ignore[index]
        screen.update_charts()  # the last redraw may predate the last epoch (once a second at most)
        (adam_val,) = [s for s in screen.chart("val").series if s.run == "adam"]
        history = next(r["history"] for r in results["runs"] if r["name"] == "adam")
        assert list(adam_val.ys) == [h["val_rmse"] for h in history] and len(history) == 3
        # the diverged run's non-finite points never break a chart, log scale or not
        for key in ("l", "l"):
            await pilot.press(key)
            await pilot.pause(0.2)
            for chart in ("loss", "lr", "val"):
                assert screen.chart(chart).error == "", screen.chart(chart).error
        await pilot.press("down", "enter")  # details of a run without test metrics
        await wait_until(pilot, lambda: isinstance(app.screen, DetailsScreen), 5, "details")
        summary = str(app.screen.query_one("#details-summary", Static).content)
        assert "diverged" in summary and "no test metrics" in summary
        await pilot.press("escape")
        await pilot.press("q")


CLOSURE = """name = "tiny-closure"
[data]
dataset = "digits"
train_limit = 160
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
seed = 0
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "lbfgs"
optimizer = { name = "lbfgs", lr = 1.0, max_iter = 3 }
"""


def test_the_end_tables_warn_of_runs_with_more_compute_per_step(tmp_path: Path) -> None:
    """Under the final table, as under the console's: LBFGS took several gradient evaluations
    per step, so its per-step and per-epoch columns had more compute than SGD's."""
    import subprocess
    import sys

    (tmp_path / "closure.toml").write_text(CLOSURE)
    run_dir = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "optlab", "compare", "closure.toml", "--out", str(run_dir), "-q"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=240)
    asyncio.run(_closure_warning(run_dir))


async def _closure_warning(run_dir: Path) -> None:
    viewer = OptlabApp(view=run_dir)
    async with viewer.run_test(size=(100, 30)) as pilot:
        view = viewer.screen
        assert isinstance(view, ExperimentScreen)
        await wait_until(pilot, lambda: view.showing_final, 10, "the final table of a finished run")
        ranking = view.query_one("#ranking", Static)
        await wait_until(pilot, lambda: ranking.display, 5, "the line under the final table")
        text = " ".join(str(ranking.render()).split())
        assert "warning: gradient evaluations per step: lbfgs" in text and "sgd" not in text
        await pilot.press("q")
