"""How long `optlab view` takes to open a big sweep's run directory, and its sweep screen.

Writes synthetic sweeps (8 optimizers x 8 learning rates x N seeds, 30 epochs, ten progress
reports per epoch, as optlab writes them; tests/sweep_fixtures.py), then in a headless Textual
app at 120x40: the view opened until every event is folded and the screen drawn, `v` until the
sweep screen is drawn, and `optlab.runs.sweep.sweep_view` and the reports on the document.
Prints seconds per step for 64 and 512 runs and the ratio 512 / 64 (how it scales; absolute
seconds move with the machine).

    python benchmarks/sweep_view.py [--seeds 8] [--epochs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sweep_fixtures import LRS, OPTIMIZERS, write_sweep_dir  # noqa: E402

from optlab.runs.publish import render_reports  # noqa: E402
from optlab.runs.sweep import sweep_view  # noqa: E402
from optlab.tui.app import OptlabApp  # noqa: E402
from optlab.tui.screens.sweep import SweepScreen  # noqa: E402


async def _open(run_dir: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        while not getattr(screen, "state", None) or not screen.state.finished:  # type: ignore[attr-defined]
            await pilot.pause(0.01)
        await pilot.pause()
        opened = time.perf_counter() - t0
        t1 = time.perf_counter()
        await pilot.press("v")
        while not isinstance(app.screen, SweepScreen) or not app.screen.chart.drawn:
            await pilot.pause(0.01)
        sweep = time.perf_counter() - t1
        await pilot.press("escape", "q")
    return opened, sweep


def measure(seeds: int, epochs: int, root: Path) -> dict[str, float]:
    run_dir = write_sweep_dir(root / f"s{seeds}", optimizers=OPTIMIZERS, lrs=LRS, seeds=tuple(range(seeds)),
                              epochs=epochs, intervals=10, diverge_at=3e-1)
    results = json.loads((run_dir / "results.json").read_text())
    t0 = time.perf_counter()
    sweep_view(results)
    view_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    render_reports(run_dir, results)
    reports_s = time.perf_counter() - t0
    opened, sweep = asyncio.run(_open(run_dir))
    return {"runs": len(results["runs"]), "events_mb": (run_dir / "events.jsonl").stat().st_size / 1e6,
            "open_s": opened, "sweep_screen_s": sweep, "sweep_view_s": view_s, "reports_s": reports_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the big sweep (8: 512 runs)")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(1, args.epochs, Path(tmp))
        big = measure(args.seeds, args.epochs, Path(tmp))
    keys = ("events_mb", "open_s", "sweep_screen_s", "sweep_view_s", "reports_s")
    print(f"{'':16}" + "".join(f"{k:>15}" for k in keys))
    for row in (small, big):
        print(f"{int(row['runs']):>5} runs       " + "".join(f"{row[k]:>15.3f}" for k in keys))
    print(f"{'ratio':16}" + "".join(f"{big[k] / small[k]:>15.2f}" for k in keys))


if __name__ == "__main__":
    main()
