"""Synthetic sweeps: the events optlab writes for a preset with `[sweep]` (optimizers x learning
rates, optionally over seeds), as a results document or a run directory, without training.

Each run's validation accuracy peaks at its optimizer's best learning rate and falls by
`drop` per decade squared away from it; learning rates at or above `diverge_at` diverge."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from optlab.runs.results import replay
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    Progress,
    RunEnded,
    RunStarted,
)

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam", "radam", "adamax")
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
BEST_LR = {"sgd": 1e-1, "adam": 1e-3, "adamw": 3e-3, "rmsprop": 1e-3, "adagrad": 3e-2, "nadam": 1e-3,
           "radam": 3e-3, "adamax": 1e-2}


def lr_label(lr: float) -> str:
    from optlab.preset.expand import format_value

    return format_value(lr, True)


def accuracy(optimizer: str, lr: float, seed: int = 0, drop: float = 0.08) -> float:
    peak = 0.95 - 0.01 * OPTIMIZERS.index(optimizer)
    return peak - drop * (math.log10(lr) - math.log10(BEST_LR[optimizer])) ** 2 + 0.002 * seed


def sweep_events(optimizers: tuple[str, ...] = OPTIMIZERS[:2], lrs: tuple[float, ...] = LRS[:4],
                 seeds: tuple[int, ...] = (0,), epochs: int = 3, diverge_at: float = math.inf,
                 unfinished: int = 0, extra_sweep: dict[str, list[Any]] | None = None,
                 intervals: int = 1) -> list[Event]:
    """The event stream of the sweep; the last `unfinished` runs have not ended; `intervals`
    progress reports per epoch (optlab writes about ten)."""
    sweep: dict[str, list[Any]] = {"optimizer.lr": list(lrs), **(extra_sweep or {})}
    preset = {"name": "sweep", "sweep": sweep,
              "runs": [{"name": o, "optimizer": {"name": o}} for o in optimizers]}
    runs = []  # (name, group, optimizer, lr, seed)
    for o in optimizers:
        for lr in lrs:
            group = f"{o}-lr{lr_label(lr)}"
            for seed in seeds:
                runs.append((f"{group}@s{seed}" if len(seeds) > 1 else group, group, o, lr, seed))
    events: list[Event] = [ExperimentStarted(run="", preset=preset, dataset={"name": "digits", "task": "multiclass"},
                                             run_names=[r[0] for r in runs])]
    for i, (name, group, o, lr, seed) in enumerate(runs):
        spec = {"name": name, "group": group, "seed": seed, "epochs": epochs, "batch_size": 64,
                "optimizer": {"name": o, "lr": lr}}
        events.append(RunStarted(run=name, spec=spec, steps_per_epoch=10, total_steps=10 * epochs))
        diverged = lr >= diverge_at
        final = accuracy(o, lr, seed)
        for epoch in range(1, epochs + 1):
            acc = final - 0.1 * (epochs - epoch)
            loss = 2.0 - acc
            for k in range(intervals, 0, -1):
                step = 10 * epoch - (k - 1) * 10 // intervals
                events.append(Progress(run=name, step=step, epoch=epoch, samples_seen=64 * step,
                                       train_loss=loss + 0.01 * k, lr=lr, elapsed_s=0.01 * step))
            if diverged and epoch == 2:
                events.append(Progress(run=name, step=10 * epoch + 1, epoch=epoch, train_loss=math.nan, lr=lr))
                break
            events.append(EpochEnded(run=name, epoch=epoch, step=10 * epoch, samples_seen=640 * epoch,
                                     train_loss=loss, val_loss=loss, val_accuracy=acc, lr=lr, elapsed_s=0.1 * epoch))
        if i >= len(runs) - unfinished:
            continue
        status = "diverged" if diverged else "finished"
        events.append(RunEnded(run=name, status=status, epochs_completed=1 if diverged else epochs,
                               reason="non-finite loss" if diverged else ""))
    if not unfinished:
        events.append(ExperimentEnded(run="", status="finished", wall_time_s=1.0))
    return events


def sweep_doc(**kwargs: Any) -> dict[str, Any]:
    return replay(sweep_events(**kwargs))


def write_sweep_dir(directory: Path, **kwargs: Any) -> Path:
    """A run directory as a headless `optlab compare` leaves it: events.jsonl and results.json."""
    directory.mkdir(parents=True, exist_ok=True)
    events = sweep_events(**kwargs)
    lines = [json.dumps(e.to_dict(), allow_nan=True, default=str) for e in events]
    (directory / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "results.json").write_text(json.dumps(replay(events), default=str), encoding="utf-8")
    return directory
