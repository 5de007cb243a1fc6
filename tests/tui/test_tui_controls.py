"""Keys that act on live training: pause/resume, stop the selected run, fast chart keys."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from textual.widgets import Static
from tui.helpers import tiny_preset, wait_for_the_end, wait_until

from optlab.tui.app import OptlabApp
from optlab.tui.process import read_control
from optlab.tui.screens.experiment import CHART_EVERY_S, ExperimentScreen
from optlab.tui.screens.keys import KeysScreen

EPOCHS = 40  # a few seconds of training: long enough to act on, short enough to finish


def test_pause_stop_and_keys_while_training(tmp_path: Path) -> None:
    asyncio.run(_pause_stop_and_keys(tmp_path))


def _steps(screen: ExperimentScreen) -> dict[str, int]:
    """The step counters the runs table shows."""
    return {name: int(screen.runs_table.get_cell(name, "step")) for name in screen.state.run_names}


async def _pause_stop_and_keys(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path, epochs=EPOCHS)
    run_dir = tmp_path / "run"
    app = OptlabApp(preset=str(preset), out=run_dir, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until(
            pilot, lambda: any(s.last_step > 0 for s in screen.state.series.values()), what="training to start"
        )
        assert not screen.state.finished

        # ---- a chart key takes effect at once while training runs (the UI never waits on it)
        loss = screen.chart("loss")
        before = loss.drawn
        t0 = time.monotonic()
        await pilot.press("l")
        await wait_until(pilot, lambda: loss.drawn != before and loss.log_y, 2, "the log-scale redraw")
        latency = time.monotonic() - t0
        assert latency < 0.5, f"log-scale key took {latency:.3f}s to show"
        assert loss.error == ""

        # ---- pause: control.json says so, and the step counters stop
        await pilot.press("space")
        assert read_control(run_dir) == {"paused": True}
        assert "PAUSED" in str(screen.status_message())
        # The runner polls between chunks (events already written may still arrive), and the
        # table shows new numbers once per `pace.every_s` (a second, more on a busy CPU).
        await pilot.pause(1.0 + screen.pace.slowest_s)
        frozen = _steps(screen)
        await pilot.pause(1.5)
        assert _steps(screen) == frozen, "steps advanced while paused"
        assert not screen.state.finished

        # ---- ? lists every key of the screen, those the footer hides or cuts too
        await pilot.press("question_mark")
        assert isinstance(app.screen, KeysScreen)
        listed = str(app.screen.query_one("#keys-text", Static).render())
        # The band key is off without repeated seeds, the sweep key without a sweep.
        on = [b for b in ExperimentScreen.BINDINGS if b.action not in ("cycle_band", "show_sweep")]  # type: ignore[union-attr]
        assert all(b.description in listed for b in on)  # type: ignore[union-attr]
        assert "band" not in listed  # without repeated seeds the band key is off, so not listed
        assert "sweep" not in listed  # nor the sweep key without a sweep
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen

        # ---- stop the selected run (second row) while paused, then resume
        await pilot.press("down")
        assert screen.selected() == "adam"
        await pilot.press("k")
        assert read_control(run_dir)["stop"] == ["adam"]
        await pilot.press("space")
        assert read_control(run_dir)["paused"] is False

        # live log-scale updates keep drawing as new points arrive, but throttled
        builds, since = loss.canvas.builds, time.monotonic()
        await wait_for_the_end(pilot, app, screen, "the end of training")
        assert loss.canvas.builds > builds and loss.error == ""
        # At most one build per CHART_EVERY_S, plus the first new point's and the end's two (its
        # data, then the chart at its new size once the final table shows: a row less); a rate
        # over a short remainder of training (under a second now) would count those against it.
        elapsed, built = time.monotonic() - since, loss.canvas.builds - builds
        assert built <= elapsed / CHART_EVERY_S + 3, f"{built} chart builds in {elapsed:.1f} s"
        await pilot.press("q")

    results = json.loads((run_dir / "results.json").read_text())
    runs = {r["name"]: r for r in results["runs"]}
    assert runs["adam"]["status"] == "stopped"
    assert runs["adam"]["epochs_completed"] < EPOCHS
    assert runs["adam"]["test"] is not None  # a stopped run keeps its partial result
    for name in ("sgd", "rms-bs32"):
        assert runs[name]["status"] == "finished"
        assert runs[name]["epochs_completed"] == EPOCHS
    assert frozen["sgd"] < runs["sgd"]["total_steps"]  # the pause came in the middle of training
