"""Schedules a run is too short for: a note, never an error.

Shortening a preset (`--set train.epochs=4` on one written for 30) leaves a step scheduler's
`step_size = 10` or a multistep's `milestones = [15, 25]` past the run's end: the learning rate
never changes, and the run trains exactly as a constant schedule would, without a word. Each
note names the run, the scheduler, its setting against the epochs and the setting that would
make it act. Torch-free: it reads the merged training fields (`loader.train_fields`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

PLATEAU_PATIENCE = 2  # optlab's default (optlab.training.schedulers._default_kwargs)
CONSTANT = " (it trains as a constant schedule would)"


def _inert(scheduler: dict[str, Any], epochs: int) -> str | None:
    """Why `scheduler` never changes the learning rate of a run of `epochs` epochs, or None.
    Per-epoch schedulers step only after warm-up, so the epochs they see are the rest."""
    name = scheduler.get("name")
    warmup = math.ceil(float(scheduler.get("warmup_epochs", 0) or 0))
    main = epochs - warmup
    after = f" after {warmup} warm-up epoch(s)" if warmup else ""
    # A decay at the end of epoch k is first used in epoch k + 1: it acts only when k < main.
    if name == "step" and isinstance(scheduler.get("step_size"), int) and scheduler["step_size"] >= main:
        size = scheduler["step_size"]
        return (f"scheduler 'step' with step_size = {size} never decays the lr in {main} epoch(s){after}: "
                f"set scheduler.step_size below {main}, or train.epochs to at least {size + 1 + warmup}{CONSTANT}")
    milestones = scheduler.get("milestones")
    if name == "multistep" and isinstance(milestones, list) and all(isinstance(m, int) for m in milestones):
        late = [m for m in milestones if m >= main]
        if late and len(late) == len(milestones):
            return (f"scheduler 'multistep' with milestones = {milestones} never decays the lr in {main} "
                    f"epoch(s){after}: set scheduler.milestones below {main}, or train.epochs to at least "
                    f"{min(late) + 1 + warmup}{CONSTANT}")
        if late:
            return (f"scheduler 'multistep' with milestones = {milestones} never reaches milestone(s) "
                    f"{', '.join(map(str, late))} in {main} epoch(s){after}: set scheduler.milestones below "
                    f"{main}, or train.epochs to at least {max(late) + 1 + warmup}")
    if name == "plateau":
        patience = scheduler.get("patience", PLATEAU_PATIENCE)
        # The first epoch sets the best loss; patience + 1 epochs without improvement then
        # lower the lr at the end of epoch patience + 2 at the earliest.
        if isinstance(patience, int) and patience + 2 >= main:
            least = patience + 3 + warmup
            return (f"scheduler 'plateau' with patience = {patience} cannot lower the lr before the last of "
                    f"{main} epoch(s){after}: set scheduler.patience below {max(main - 2, 0)}, or train.epochs "
                    f"to at least {least}{CONSTANT}" if main > 2 else
                    f"scheduler 'plateau' cannot lower the lr in {main} epoch(s){after}: set train.epochs to at "
                    f"least {least}{CONSTANT}")
    return None


def schedule_notes(runs: Iterable[tuple[str, dict[str, Any]]], origin: str) -> list[str]:
    """One note per configuration (`group`: its seeds and sweep share one) whose scheduler never
    acts in its epochs; `runs` holds each run's group and merged training fields."""
    notes: list[str] = []
    seen: set[str] = set()
    for group, fields in runs:
        problem = _inert(fields.get("scheduler") or {}, int(fields.get("epochs", 0)))
        if problem and group not in seen:
            seen.add(group)
            notes.append(f"{origin}: run {group!r}: {problem}")
    return notes
