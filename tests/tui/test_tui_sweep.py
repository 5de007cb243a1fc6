"""The sweep screen (`v`) on synthetic sweeps of a few hundred runs, at 120x40 and 80x24."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sweep_fixtures import LRS, OPTIMIZERS, sweep_events, write_sweep_dir
from tui.helpers import wait_until

from optlab.tui.app import OptlabApp
from optlab.tui.screens.experiment import ExperimentScreen
from optlab.tui.screens.sweep import SweepScreen
from optlab.tui.widgets.sweep_table import RUN_ROW

SEEDS = (0, 1, 2, 3)  # 8 optimizers x 8 learning rates x 4 seeds: 256 runs


def test_sweep_screen_at_120x40_groups_filters_and_expands(tmp_path: Path) -> None:
    run_dir = write_sweep_dir(tmp_path / "run", optimizers=OPTIMIZERS, lrs=LRS, seeds=SEEDS, diverge_at=3e-1)
    asyncio.run(_wide(run_dir))


async def _wide(run_dir: Path) -> None:
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until(pilot, lambda: screen.state.finished, what="the events read")
        await pilot.press("v")
        sweep = app.screen
        assert isinstance(sweep, SweepScreen)
        await pilot.pause()
        table, chart = sweep.table, sweep.chart
        # one row per optimizer (not 256), best first; one chart line and legend entry per optimizer
        assert table.row_keys()[0] == "sgd" and sorted(table.row_keys()) == sorted(OPTIMIZERS)
        legend = [s.label for s in chart.series if s.legend]
        assert legend == list(OPTIMIZERS)
        assert all(name in chart.legend.render().plain for name in OPTIMIZERS)  # type: ignore[union-attr]
        assert sum(1 for s in chart.series if s.band) == 16  # each optimizer's seed band
        assert sum(1 for s in chart.series if s.style == "points") == 8  # lr 3e-1 diverged everywhere
        assert "32/32" in table.get_row("sgd")[5] and str(table.get_row("sgd")[6]) == "4"
        assert table.get_row("adam")[3] == "1e-3"  # adam's best learning rate
        await pilot.pause(0.1)
        assert chart.drawn and "chart unavailable" not in chart.drawn
        # Enter expands a group to its runs, again collapses it
        await pilot.press("enter")
        assert len(table.row_keys()) == 8 + 32 and table.row_keys()[1] == RUN_ROW + "sgd-lr1e-4@s0"
        await pilot.press("enter")
        assert len(table.row_keys()) == 8
        # `/` filters by group name ...
        await pilot.press("slash", *"adamw")
        assert table.row_keys() == ["adamw"]
        # ... and by run name: the groups with runs that match, those runs shown
        sweep.filter_input.value = "lr1e-3@s0"
        await pilot.pause()
        keys = table.row_keys()
        assert len(keys) == 16 and all(k.endswith("lr1e-3@s0") for k in keys if k.startswith(RUN_ROW))
        await pilot.press("escape")  # clears the filter
        assert len(table.row_keys()) == 8 and not sweep.filter_input.display
        await pilot.press("m")
        assert sweep.view is not None and sweep.view.reduce == "final"
        assert "final validation accuracy" in chart.title
        await pilot.press("escape")
        assert app.screen is screen


def test_sweep_screen_fits_80x24(tmp_path: Path) -> None:
    run_dir = write_sweep_dir(tmp_path / "run", optimizers=OPTIMIZERS, lrs=LRS, seeds=SEEDS)
    asyncio.run(_narrow(run_dir))


async def _narrow(run_dir: Path) -> None:
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state.finished, what="the events read")  # type: ignore[attr-defined]
        await pilot.press("v")
        sweep = app.screen
        assert isinstance(sweep, SweepScreen)
        await pilot.pause(0.1)
        assert sweep.chart.region.height >= 8 and sweep.table.region.height >= 5
        assert sweep.chart.drawn and sweep.table.row_count == 8
        assert sweep.table.region.bottom <= 23  # above the footer


def test_sweep_screen_fills_in_live_as_runs_end(tmp_path: Path) -> None:
    asyncio.run(_live(tmp_path))


async def _live(tmp_path: Path) -> None:
    full = sweep_events(optimizers=OPTIMIZERS[:4], lrs=LRS[:4], seeds=(0, 1))
    partial = sweep_events(optimizers=OPTIMIZERS[:4], lrs=LRS[:4], seeds=(0, 1), unfinished=8)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = [json.dumps(e.to_dict()) for e in partial]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.state.events_seen == len(partial), what="the first events")  # type: ignore[attr-defined]
        await pilot.press("v")
        sweep = app.screen
        assert isinstance(sweep, SweepScreen)
        await pilot.pause()
        last = OPTIMIZERS[3]
        assert sweep.table.get_row(last)[5] == "0/8" and sweep.table.get_row(last)[2].plain == "-"
        # the training child writes the run ends: the screen follows within its refresh
        ended = [json.dumps(e.to_dict()) for e in full if e.kind in ("run_ended", "experiment_ended")][-9:]
        with (run_dir / "events.jsonl").open("a") as f:
            f.write("\n".join(ended) + "\n")
        await wait_until(pilot, lambda: sweep.table.get_row(last)[5] == "8/8", timeout=10, what="the runs ended")
        assert sweep.table.get_row(last)[2].plain != "-"
