"""Focus on the experiment screen's charts with ~200 runs (`f`, on by itself above 12 runs),
at 120x40 and 80x24, on synthetic sweep run directories."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sweep_fixtures import LRS, OPTIMIZERS, write_sweep_dir
from tui.helpers import wait_until

from optlab.runs.palette import FADED
from optlab.training.events import Progress
from optlab.tui.app import OptlabApp
from optlab.tui.screens.experiment import ExperimentScreen
from optlab.tui.widgets.chart import CLIP_MARKER

SEEDS = (0, 1, 2)  # 8 optimizers x 8 learning rates x 3 seeds: 192 runs
TOP = "sgd-lr1e-1@s2"  # the best validation accuracy of the fixture


def _run_dir(tmp_path: Path) -> Path:
    run_dir = write_sweep_dir(tmp_path / "run", optimizers=OPTIMIZERS, lrs=LRS, seeds=SEEDS, diverge_at=3e-1)
    # One run's loss blows up (finite) before the end: it must not flatten the 191 others.
    spike = Progress(run="adam-lr1e-4@s0", step=31, epoch=3, samples_seen=64 * 31, train_loss=1e6, lr=1e-4)
    with (run_dir / "events.jsonl").open("a") as f:
        f.write(json.dumps(spike.to_dict()) + "\n")
    return run_dir


def _legend(screen: ExperimentScreen, key: str) -> str:
    return screen.chart(key).legend.render().plain  # type: ignore[union-attr]


def test_focus_at_120x40_colours_the_top_runs_and_bands_the_rest(tmp_path: Path) -> None:
    asyncio.run(_wide(_run_dir(tmp_path)))


async def _wide(run_dir: Path) -> None:
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until(pilot, lambda: screen.state.finished, what="the events read")
        await pilot.pause(0.1)
        loss, val = screen.chart("loss"), screen.chart("val")
        # on by itself: 8 runs in colour, one grey envelope for the other 184
        band = loss.series[0]
        assert band.style == "envelope" and band.color == FADED and band.label == "+184 in grey"
        named = [s.label for s in val.series if s.legend]
        assert named[0] == "+184 in grey" and named[1] == TOP and len(named) == 9
        # the legend names configurations (seeds share one entry and colour, as without focus)
        entries = _legend(screen, "val").replace("\n", "  ").split("  ")
        assert entries[:2] == ["■ +184 in grey", "■ sgd-lr1e-1"] and "■ sgd-lr1e-1@s2" not in entries
        assert "focus: top 8 by best validation of 192 runs" in str(loss.border_subtitle)
        # the spike is clipped at the top edge with a marker; the scale stays the others'
        assert CLIP_MARKER in loss.drawn and "outliers above the scale" in str(loss.border_subtitle)
        assert "1e+06" not in loss.drawn and "chart unavailable" not in loss.drawn + val.drawn
        assert "⣿" not in val.drawn or "⢕" in val.drawn or "⡪" in val.drawn  # a shade, not a block
        # f: every run again (with seeds, one mean and band per configuration); f: focus back
        await pilot.press("f")
        assert not any(s.style == "envelope" for s in loss.series)
        assert len([s for s in val.series if s.legend]) == 64
        await pilot.press("f")
        assert loss.series[0].style == "envelope"
        # h on the selected run: its configuration's seeds in colour, every other run grey
        selected = screen.selected()
        assert selected is not None
        await pilot.press("h")
        group = screen.state.grouping.key(selected)
        assert [s.label for s in val.series if s.legend][1:] == screen.state.grouping.groups[group]
        assert val.series[0].label == "+189 in grey"
        assert f"focus: {group} of 192 runs" in str(val.border_subtitle)
        await pilot.press("h")
        # the final table sorted by a column picks the runs in colour
        while screen.tables.view != "final":
            await pilot.press("t")
        await pilot.press("o")
        assert "focus: top 8 by" in str(loss.border_subtitle)
        assert "best validation" not in str(loss.border_subtitle)


def test_focus_fits_80x24(tmp_path: Path) -> None:
    asyncio.run(_narrow(_run_dir(tmp_path)))


async def _narrow(run_dir: Path) -> None:
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until(pilot, lambda: screen.state.finished, what="the events read")
        await pilot.pause(0.1)
        loss = screen.chart("loss")
        assert loss.region.height >= 8 and loss.region.bottom <= 23
        assert loss.drawn and "chart unavailable" not in loss.drawn
        assert CLIP_MARKER in loss.drawn
        # the legend's first entry is the grey band, so a legend cut at 80 columns still says it
        assert _legend(screen, "loss").startswith("■ +184 in grey")
