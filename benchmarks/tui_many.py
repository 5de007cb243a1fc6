"""The TUI with 500 runs (issue 23): `optlab view` of a 512-run sweep directory, driven headless
with Textual's `App.run_test` at 120x40, while the run directory grows as a training child
would write it.

    python benchmarks/tui_many.py [--seeds 8] [--epochs 30] [--live-s 20] [--frames 5] [--json OUT]
    python benchmarks/tui_many.py --tiny      # a few runs, a second of each phase: the smoke test

The sweep (8 optimizers x 8 learning rates x N seeds, ten progress reports per epoch, as
tests/sweep_fixtures.py writes it) has its events interleaved round-robin over the runs, so
every run advances together as side-by-side training does. Phases:

1. open: the first 40% of the events written, the view opened until they are folded and drawn;
2. live, focus on (it is on by itself above 12 runs), then live, focus off (`f`): the next
   events appended every 0.25 s for `--live-s` seconds each; the process's CPU seconds per
   wall second (this process is the UI: the appends are pre-serialised lines), and how many
   times the loss chart was rebuilt (the pacing slows redraws while the UI is busy);
3. frames: `l` pressed `--frames` times, focus on and off; the time from the key until the
   loss chart is drawn again (series, envelope, braille and the screen's repaint), and the
   screen's `update_charts` alone (the series and envelopes, no drawing) and the loss chart's
   figure alone (downsampling and braille, no screen).

No training: what a TUI watching costs training is `benchmarks/tui_cost.py` (real runs in a
tmux pane); 500 real runs on a small machine would take hours per side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sweep_fixtures import LRS, OPTIMIZERS, sweep_events  # noqa: E402

from optlab.training.events import Event  # noqa: E402
from optlab.tui.app import OptlabApp  # noqa: E402
from optlab.tui.screens.experiment import ExperimentScreen  # noqa: E402

SIZE = (120, 40)


def interleaved(events: list[Event]) -> list[str]:
    """Events as JSON lines, the runs' own streams taken round-robin (all runs advance together)."""
    per_run: dict[str, list[Event]] = {}
    for event in events[1:-1]:
        per_run.setdefault(event.run, []).append(event)
    order = sorted(((i, r, e) for r, (_, stream) in enumerate(per_run.items()) for i, e in enumerate(stream)),
                   key=lambda t: (t[0], t[1]))
    ordered = [events[0], *(e for _, _, e in order), events[-1]]
    return [json.dumps(e.to_dict(), allow_nan=True, default=str) + "\n" for e in ordered]


async def _until(pilot: Any, condition: Any, timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the view did not catch up")
        await pilot.pause(0.01)


async def _live(pilot: Any, screen: ExperimentScreen, path: Path, lines: list[str], seconds: float) -> dict[str, float]:
    """Append `lines` in equal chunks every 0.25 s over `seconds`; the UI's CPU per second."""
    chunks = max(1, int(seconds / 0.25))
    size = -(-len(lines) // chunks)
    builds = screen.chart("loss").canvas.builds
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k in range(chunks):
        with path.open("a") as f:
            f.writelines(lines[k * size : (k + 1) * size])
        await pilot.pause(0.25)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"cpu_per_s": cpu / wall, "chart_builds_per_s": (screen.chart("loss").canvas.builds - builds) / wall}


async def _frames(pilot: Any, screen: ExperimentScreen, count: int) -> dict[str, float]:
    """`l` until the loss chart is drawn again (the one chart `l` always changes: validation
    accuracy has no log axis, and a sweep's learning rates are on one already), and
    `update_charts` alone, in seconds."""
    frames, series, draws = [], [], []
    chart = screen.chart("loss")
    canvas = chart.canvas
    for _ in range(count):
        builds = canvas.builds
        t0 = time.perf_counter()
        await pilot.press("l")
        await _until(pilot, lambda b=builds: canvas.builds > b, timeout=60.0)
        frames.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        screen.update_charts()
        series.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        chart.draw(canvas.size.width, canvas.size.height)
        draws.append(time.perf_counter() - t0)
        await pilot.pause(0.05)
    return {"frame_s": statistics.median(frames), "frame_max_s": max(frames), "series_s": statistics.median(series),
            "draw_s": statistics.median(draws)}


async def _measure(run_dir: Path, lines: list[str], live_s: float, frames: int) -> dict[str, Any]:
    path = run_dir / "events.jsonl"
    first, second = int(len(lines) * 0.4), int(len(lines) * 0.7)
    path.write_text("".join(lines[:first]))
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await _until(pilot, lambda: screen.state.events_seen >= first and screen.chart("loss").canvas.builds > 0)
        out["open_s"] = time.perf_counter() - t0
        out["runs"] = len(screen.state.run_names)
        out["focus_auto"] = screen.chart_focus.on(out["runs"])
        out["live_focus"] = await _live(pilot, screen, path, lines[first:second], live_s)
        out["frames_focus"] = await _frames(pilot, screen, frames)
        await pilot.press("f")
        out["focus_after_f"] = screen.chart_focus.on(out["runs"])
        out["live_all"] = await _live(pilot, screen, path, lines[second:], live_s)
        out["frames_all"] = await _frames(pilot, screen, frames)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="8: 8 x 8 x 8 = 512 runs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--live-s", type=float, default=20.0, help="seconds of each live phase")
    parser.add_argument("--frames", type=int, default=5, help="chart keys timed per focus setting")
    parser.add_argument("--tiny", action="store_true", help="16 runs, 2 epochs, short phases (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    optimizers, lrs = (OPTIMIZERS[:4], LRS[:4]) if args.tiny else (OPTIMIZERS, LRS)
    seeds, epochs = (1, 2) if args.tiny else (args.seeds, args.epochs)
    live_s, frames = (0.5, 1) if args.tiny else (args.live_s, args.frames)
    events = sweep_events(optimizers=optimizers, lrs=lrs, seeds=tuple(range(seeds)), epochs=epochs,
                          intervals=10, diverge_at=3e-1)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        out = asyncio.run(_measure(run_dir, interleaved(events), live_s, frames))
    out["events"] = len(events)
    print(f"{out['runs']} runs, {len(events)} events, opened (40% of the events) in {out['open_s']:.2f} s")
    for label, live, fr in (("focus on ", out["live_focus"], out["frames_focus"]),
                            ("focus off", out["live_all"], out["frames_all"])):
        print(f"{label}: UI CPU {live['cpu_per_s']:.3f} s/s, loss chart rebuilt {live['chart_builds_per_s']:.2f}/s,"
              f" key to chart drawn median {fr['frame_s'] * 1e3:.0f} ms (max {fr['frame_max_s'] * 1e3:.0f}),"
              f" series alone {fr['series_s'] * 1e3:.0f} ms, loss chart drawn alone {fr['draw_s'] * 1e3:.0f} ms")
    ratio = out["frames_all"]["frame_s"] / out["frames_focus"]["frame_s"]
    out["frame_off_over_on"] = ratio
    print(f"frame time, focus off / on: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
