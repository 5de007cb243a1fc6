"""Training outlives the TUI: detach, the run directory keeps growing, `view` reattaches live."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tui.helpers import tiny_preset, wait_until

from optlab.tui.app import OptlabApp
from optlab.tui.process import child_alive
from optlab.tui.screens.experiment import ExperimentScreen
from optlab.tui.screens.quit import QuitScreen


def _max_step(screen: ExperimentScreen) -> int:
    return max((s.last_step for s in screen.state.series.values()), default=0)


def test_detach_then_view_reattaches(tmp_path: Path, reap: list[int]) -> None:
    asyncio.run(_detach_then_view(tmp_path, reap))


async def _detach_then_view(tmp_path: Path, reap: list[int]) -> None:
    preset = tiny_preset(tmp_path, epochs=5000)  # far longer than the test: it is stopped at the end
    run_dir = tmp_path / "run"
    events = run_dir / "events.jsonl"

    # ---- start, then quit with "detach"
    first = OptlabApp(preset=str(preset), out=run_dir, device="cpu")
    async with first.run_test(size=(100, 30)) as pilot:
        screen = first.screen
        assert isinstance(screen, ExperimentScreen)
        assert first.process is not None and first.process.pid is not None
        reap.append(first.process.pid)
        await wait_until(pilot, lambda: _max_step(screen) > 0, what="training to start")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(first.screen, QuitScreen), 5, "the quit question")
        await pilot.press("d")
        await wait_until(pilot, lambda: first.return_code is not None, 5, "the app to exit")
    assert first.detached
    process = first.process
    assert process.poll() is None, "training stopped with the TUI"
    assert child_alive(run_dir) is True

    # ---- the run directory keeps growing without a TUI
    size = events.stat().st_size
    deadline = time.monotonic() + 20
    while events.stat().st_size <= size and time.monotonic() < deadline:
        time.sleep(0.2)
    assert events.stat().st_size > size

    # ---- `optlab view` shows the live state and follows it
    second = OptlabApp(view=run_dir)
    async with second.run_test(size=(100, 30)) as pilot:
        view = second.screen
        assert isinstance(view, ExperimentScreen) and view.process is None
        await wait_until(pilot, lambda: _max_step(view) > 0 and bool(view.state.run_names), what="the replay")
        assert view.live and not view.state.finished
        assert "attached" in str(view.status_message())
        assert view.state.run_names == ["sgd", "adam", "rms-bs32"]
        assert all(view.state.run(n)["status"] == "running" for n in view.state.run_names)
        seen = _max_step(view)
        await wait_until(pilot, lambda: _max_step(view) > seen, 20, "new steps while attached")
        view.update_charts()
        assert [s.label for s in view.chart("lr").series] == view.state.run_names
        assert all(len(s.xs) > 0 for s in view.chart("lr").series)

        # ---- quitting the view while training runs asks; "stop" ends every run, keeping results
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(second.screen, QuitScreen), 5, "the quit question")
        await pilot.press("s")
        await wait_until(pilot, lambda: second.return_code is not None, 30, "stop, then exit")
    assert process.proc is not None
    assert process.proc.wait(timeout=30) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["stopped"] * 3
    assert all(r["test"] is not None for r in results["runs"])
