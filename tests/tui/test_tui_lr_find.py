"""The LR range test from the start screen: a real `optlab lr-find` child, its curves, a preset."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList
from tui.helpers import tiny_preset, wait_until

from optlab.tui.app import OptlabApp
from optlab.tui.screens.lr_find import LrFindScreen
from optlab.tui.screens.start import StartScreen
from optlab.tui.widgets.chart import Chart


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a presets/ directory of its own, and no user presets."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTLAB_PRESETS", str(tmp_path / "user-presets"))
    (tmp_path / "presets").mkdir()
    return tmp_path / "presets"


async def start_range_test(app: OptlabApp, pilot: Pilot, preset: str) -> tuple[StartScreen, LrFindScreen]:
    """`l` on the start screen with `preset` highlighted."""
    await pilot.pause()
    start = app.screen
    assert isinstance(start, StartScreen)
    start.query_one("#presets", OptionList).highlighted = [s.name for s in start.presets].index(preset)
    await pilot.press("l")
    screen = app.screen
    assert isinstance(screen, LrFindScreen)
    return start, screen


def test_range_test_from_the_start_screen(tmp_path: Path, presets: Path) -> None:
    tiny_preset(presets, epochs=6)  # 6 epochs: enough steps for the ladder
    asyncio.run(_range_test(tmp_path))


async def _range_test(tmp_path: Path) -> None:
    app = OptlabApp(runs_base=tmp_path / "runs", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        start, screen = await start_range_test(app, pilot, "tiny")
        await wait_until(pilot, lambda: screen.doc is not None, timeout=180, what="the range test")
        assert screen.process.poll() == 0
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
        assert run_dir.name.endswith("-tiny-lrfind")
        doc = json.loads((run_dir / "lr_find.json").read_text())
        assert screen.doc == doc and [r["name"] for r in doc["runs"]] == ["sgd", "adam", "rms-bs32"]
        chart = screen.query_one("#lr-chart", Chart)
        assert [s.label for s in chart.series if s.legend] == ["sgd", "adam", "rms-bs32"]
        first = doc["runs"][0]
        assert list(chart.series[0].ys) == [p["smoothed"] for p in first["points"]]

        await pilot.press("w")
        await pilot.pause()
        written = tmp_path / "user-presets" / "tiny-lrfind.toml"  # where the experiment screen's `w` saves
        text = written.read_text()
        assert 'name = "tiny-lrfind"' in text and "# lr-find:" in text
        await pilot.press("w")  # a second save never overwrites the first
        await pilot.pause()
        second = tmp_path / "user-presets" / "tiny-lrfind-2.toml"
        assert written.read_text() == text and 'name = "tiny-lrfind-2"' in second.read_text()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is start
        await pilot.press("q")


FAST_THEN_SLOW = """name = "fast-then-slow"
[data]
dataset = "digits"
[model]
name = "mlp"
hidden = [1024, 1024]
[train]
epochs = 1
batch_size = 8
seed = 0
[[runs]]
name = "fast"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "slow"
batch_size = 1024
epochs = 60  # the range test never steps past a run's own budget: 120 steps, 100 of them on the ladder
optimizer = { name = "adam", lr = 1e-3 }
"""


def test_each_curve_appears_once_its_run_is_tested(tmp_path: Path, presets: Path) -> None:
    """The first run's curve is on the chart while the second run (batches of 1024 through a
    1024-1024 MLP: seconds) is still being tested, with how many runs are done."""
    (presets / "fast-then-slow.toml").write_text(FAST_THEN_SLOW)
    asyncio.run(_curves_as_they_come(tmp_path))


async def _curves_as_they_come(tmp_path: Path) -> None:
    app = OptlabApp(runs_base=tmp_path / "runs", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        _, screen = await start_range_test(app, pilot, "fast-then-slow")
        chart = screen.query_one("#lr-chart", Chart)
        await wait_until(pilot, lambda: bool(chart.series) or screen.doc is not None, timeout=120,
                         what="the first curve")
        assert screen.doc is None, "the range test ended before its first run's curve was drawn"
        assert [s.label for s in chart.series if s.legend] == ["fast"]
        assert chart.note == "1/2 runs tested"
        await wait_until(pilot, lambda: screen.doc is not None, timeout=180, what="the range test")
        assert [s.label for s in chart.series if s.legend] == ["fast", "slow"]
        assert chart.note == "• suggestion"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("q")
