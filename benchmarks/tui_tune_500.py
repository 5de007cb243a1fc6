"""The tuning screen with 500 trials (issue 18): `optlab view` of a synthetic tuning run
directory, driven headless with Textual's `App.run_test` at 120x40, while it grows as `optlab
tune` writes it.

    python benchmarks/tui_tune_500.py [--candidates 6] [--budget 84] [--epochs 20] [--live-s 10] [--json OUT]
    python benchmarks/tui_tune_500.py --tiny      # a few trials, a second of each phase: the smoke test

The study: every candidate's trials in waves of 4 per candidate, their events interleaved
round-robin within a wave as side-by-side training writes them (ten progress reports per
epoch, an epoch end per epoch, a quarter of the trials pruned half-way). Phases:

1. fold: `TuneLog.apply` over every event at once (no screen), and the parse of the lines;
2. open: the first 90% of the events written, the view opened until every trial there is
   folded and drawn (table rows, dots);
3. live: the rest appended every 0.25 s for `--live-s` seconds; the UI process's CPU seconds
   per wall second, the draws per second and the longest draw (table rows added and updated,
   chart series, best-so-far lines);
4. the end: tune.json written; until the ranking table shows; then `c` (the best-so-far chart)
   until it is drawn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from optlab.runs.store import parse_event_line
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    Progress,
    RunEnded,
    RunStarted,
)
from optlab.tui.app import OptlabApp
from optlab.tui.screens.tune import TuneScreen
from optlab.tuning.live import SETTINGS_FILE, TuneLog, TuneSettings

SIZE = (120, 40)
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adamw", "nadam", "adagrad")


def study_events(candidates: int, budget: int, epochs: int, seed: int = 0) -> tuple[list[Event], list[str]]:
    rng = random.Random(seed)
    names = [f"{OPTIMIZERS[i % len(OPTIMIZERS)]}-{i}" for i in range(candidates)]
    placement = {"device": "cpu", "host": socket.gethostname(), "threads": 1}
    preset = {"name": "synthetic", "train": {}, "runs": [{"name": n, "optimizer": {"name": n.split("-")[0], "lr": 0.01}}
                                                          for n in names]}
    events: list[Event] = [ExperimentStarted(run="", preset=preset, time=time.time())]
    for wave in range(0, budget, 4):
        streams = []
        for name in names:
            for n in range(wave, min(wave + 4, budget)):
                run = f"{name}#{n}"
                lr = 10 ** rng.uniform(-4, -0.5)
                pruned = rng.random() < 0.25
                stream: list[Event] = [RunStarted(run=run, spec={"optimizer": {"name": name.split("-")[0], "lr": lr,
                                                                              "weight_decay": 10 ** rng.uniform(-6, -2)}},
                                                  placement=placement)]
                last = epochs // 2 if pruned else epochs
                acc = 0.1
                for e in range(1, last + 1):
                    for k in range(10):
                        stream.append(Progress(run=run, step=e * 10 + k, epoch=e, train_loss=1.0 / e, lr=lr))
                    acc = min(0.99, acc + (1 - acc) * rng.uniform(0.05, 0.3) * (1 - abs(math.log10(lr) + 2) / 3))
                    stream.append(EpochEnded(run=run, epoch=e, step=e * 10, val_accuracy=acc, val_loss=1 - acc))
                stream.append(RunEnded(run=run, status="stopped" if pruned else "finished", epochs_completed=last))
                streams.append(stream)
        for i in range(max(len(s) for s in streams)):
            events += [s[i] for s in streams if i < len(s)]
    events.append(ExperimentEnded(run="", status="finished", wall_time_s=1.0))
    return events, names


def lines_of(events: list[Event]) -> list[str]:
    return [json.dumps(e.to_dict(), allow_nan=True, default=str) + "\n" for e in events]


def summary_of(study: TuneLog) -> dict[str, Any]:
    """A tune.json as the service writes it, for what the screen reads of it."""
    by: dict[str, list[dict[str, Any]]] = {name: [] for name in study.candidates}
    for t in study.trials.values():
        by[t.candidate].append({"run": t.run, "number": t.number, "status": t.status, "value": t.value,
                                "params": t.params})
    candidates = []
    for c in study.candidates.values():
        b = c.best
        candidates.append({"name": c.name, "trials": by[c.name], "edges": [], "finals": [],
                           "best": None if b is None else {"run": b.run, "value": b.value, "params": b.params},
                           "budget": {"trials": len(by[c.name]), "pruned": 0, "diverged_or_failed": 0}})
    return {"candidates": candidates, "ranking": None, "final_results": {"runs": []}}


async def _until(pilot: Any, condition: Any, timeout: float = 600.0) -> float:
    t0 = time.perf_counter()
    while not condition():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the view did not catch up")
        await pilot.pause(0.01)
    return time.perf_counter() - t0


async def measure(root: Path, lines: list[str], names: list[str], settings: TuneSettings, live_s: float) -> dict[str, Any]:
    events = root / "events.jsonl"
    split = int(len(lines) * 0.9)
    events.write_text("".join(lines[:split]))
    opened = [parse_event_line(line.encode()) for line in lines[:split]]
    expected = TuneLog(settings)
    expected.apply([e for e in opened if e is not None])
    out: dict[str, Any] = {}
    durations: list[float] = []
    draw = TuneScreen.draw

    def timed_draw(screen: TuneScreen) -> None:
        t0 = time.perf_counter()
        draw(screen)
        durations.append(time.perf_counter() - t0)

    TuneScreen.draw = timed_draw  # type: ignore[method-assign]
    app = OptlabApp(view=root)
    opening = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, TuneScreen)
        await _until(pilot, lambda: screen.trials_table.row_count == len(expected.trials) and not screen.stale)
        out["open_s"] = time.perf_counter() - opening
        out["open_longest_draw_s"] = max(durations)
        rest = lines[split:-1]
        chunks = max(1, int(live_s / 0.25))
        size = -(-len(rest) // chunks)
        draws, cpu0, wall0 = len(durations), time.process_time(), time.perf_counter()
        for k in range(chunks):
            with events.open("a") as f:
                f.writelines(rest[k * size:(k + 1) * size])
            await pilot.pause(0.25)
        wall = time.perf_counter() - wall0
        live = durations[draws:]
        out.update(live_cpu_per_s=(time.process_time() - cpu0) / wall, live_draws_per_s=len(live) / wall,
                   live_longest_draw_s=max(live, default=0.0), live_median_draw_s=sorted(live)[len(live) // 2] if live else 0.0)
        with events.open("a") as f:
            f.write(lines[-1])
        await _until(pilot, lambda: screen.study is not None and screen.study.ended)
        (root / "tune.json").write_text(json.dumps(summary_of(screen.study)))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        await _until(pilot, lambda: screen.summary is not None and not screen.stale)
        out["end_s"] = time.perf_counter() - t0
        builds = screen.chart.canvas.builds
        t0 = time.perf_counter()
        await pilot.press("c")
        await _until(pilot, lambda: screen.chart.canvas.builds > builds)
        out["chart_key_s"] = time.perf_counter() - t0
        out["trials"] = screen.trials_table.row_count
        out["best_so_far_points"] = sum(len(s.xs) for s in screen.chart.series)
    TuneScreen.draw = draw  # type: ignore[method-assign]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--budget", type=int, default=84)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--live-s", type=float, default=10.0)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.tiny:
        args.candidates, args.budget, args.epochs, args.live_s = 2, 4, 3, 1.0
    events, names = study_events(args.candidates, args.budget, args.epochs)
    lines = lines_of(events)
    settings = TuneSettings("val_accuracy", "asha", args.budget, 3, tuple(names))
    t0 = time.perf_counter()
    parsed = [parse_event_line(line.encode()) for line in lines]
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    TuneLog(settings).apply([e for e in parsed if e is not None])
    result: dict[str, Any] = {"trials": args.candidates * args.budget, "events": len(lines),
                              "mb": round(sum(map(len, lines)) / 1e6, 1), "parse_s": parse_s,
                              "fold_s": time.perf_counter() - t0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "study"
        root.mkdir()
        (root / "preset.toml").write_text('name = "synthetic"\n')
        (root / SETTINGS_FILE).write_text(json.dumps({"settings": {"objective": "val_accuracy", "pruner": "asha",
                                                                   "budget": args.budget, "final_seeds": 3},
                                                      "candidates": names}))
        result.update(asyncio.run(measure(root, lines, names, settings, args.live_s)))
    text = json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
