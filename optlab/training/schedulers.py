"""Learning-rate schedules with an optional linear warm-up, behind one small interface.

The trainer calls `after_batch()` after every optimizer step and `after_epoch(val_loss)` at
every epoch end; `LRSchedule` decides which of them drives the torch scheduler, so the trainer
never needs to know that cyclic/onecycle step per batch and the others per epoch.

Warm-up: W = round(warmup_epochs * steps_per_epoch) batches whose lr rises linearly from
`warmup_start_factor * lr` (batch 0) to the main schedule's starting lr (batch W), which is
`lr` for every scheduler except cyclic (starts at its base_lr) and onecycle (max_lr/div_factor),
and linear when start_factor < 1. The main schedule then runs for what is left: per-batch ones
for `epochs * steps_per_epoch - W` steps, per-epoch ones for `epochs - ceil(W / steps_per_epoch)`
epochs, stepping only at the ends of epochs after the warm-up has finished.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from optlab import registry
from optlab.errors import OptlabError
from optlab.spec import OptimizerConfig, SchedulerConfig
from optlab.training.optim import unknown_kwarg_error


def constant(optimizer: Optimizer, **_: Any) -> None:
    """The "constant" schedule: no torch scheduler at all (warm-up may still apply)."""
    return None


def scheduler_factory(name: str) -> Callable[..., Any]:
    return registry.get("scheduler", name).factory()


def steps_per_batch(name: str) -> bool:
    return registry.get("scheduler", name).has("per_batch")


NOT_USER_KWARGS = frozenset({"self", "optimizer", "last_epoch", "verbose"})
# Filled by optlab from the run's length / the watched metric, or not expressible in TOML.
FILLED: dict[str, frozenset[str]] = {
    "onecycle": frozenset({"total_steps", "epochs", "steps_per_epoch"}),
    "cyclic": frozenset({"scale_fn"}),
    "plateau": frozenset({"mode"}),  # it always watches val_loss, where lower is better
}

# `scheduler_kwargs_error` dry-runs the schedule with this many batches per epoch, for at most
# this many epochs: enough to hit torch's own argument checks and runaway learning rates.
DRY_RUN_STEPS_PER_EPOCH = 2
DRY_RUN_MAX_EPOCHS = 200


def allowed_kwargs(name: str) -> list[str]:
    """The keys a preset may set for scheduler `name`, in signature order."""
    skip = NOT_USER_KWARGS | FILLED.get(name, frozenset())
    return [p for p in registry.signature_params(scheduler_factory(name))[0] if p not in skip]


def _default_kwargs(
    name: str, base_lrs: list[float], main_epochs: int, main_steps: int, steps_per_epoch: int
) -> dict[str, Any]:
    e = main_epochs
    defaults: dict[str, dict[str, Any]] = {
        "step": {"step_size": max(1, e // 3), "gamma": 0.1},
        # A set: with few epochs both milestones can coincide, which would decay twice at once.
        "multistep": {"milestones": sorted({max(1, e // 2), max(1, 3 * e // 4)}), "gamma": 0.1},
        "exponential": {"gamma": 0.9},
        "cosine": {"T_max": e, "eta_min": 0.0},
        "cosine_warm_restarts": {"T_0": max(1, e // 3)},
        "plateau": {"mode": "min", "factor": 0.1, "patience": 2},
        "linear": {"start_factor": 1.0, "end_factor": 0.01, "total_iters": e},
        # One epoch up, one epoch down: a full triangle every two epochs, so even a short run
        # shows several cycles. Momentum cycling is off because not every optimizer has one.
        "cyclic": {
            "base_lr": [lr / 10 for lr in base_lrs],
            "max_lr": list(base_lrs),
            "step_size_up": max(1, steps_per_epoch),
            "cycle_momentum": False,
        },
        "onecycle": {"max_lr": list(base_lrs), "total_steps": main_steps, "cycle_momentum": False},
    }
    return defaults.get(name, {})


class LRSchedule:
    """Warm-up plus one torch scheduler, stepped per batch or per epoch as that one needs."""

    def __init__(self, optimizer: Optimizer, cfg: SchedulerConfig, epochs: int, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.name = cfg.name
        self.per_batch = steps_per_batch(cfg.name)
        steps_per_epoch = max(1, steps_per_epoch)
        total_steps = max(1, epochs * steps_per_epoch)
        self.warmup_steps = min(round(cfg.warmup_epochs * steps_per_epoch), total_steps)
        self.warmup_start_factor = cfg.warmup_start_factor
        # Epochs touched by warm-up: per-epoch schedulers do not step at their ends.
        self.warmup_epochs = math.ceil(self.warmup_steps / steps_per_epoch)
        self.main_steps = max(1, total_steps - self.warmup_steps)
        main_epochs = max(1, epochs - self.warmup_epochs)

        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        kwargs = _default_kwargs(cfg.name, self.base_lrs, main_epochs, self.main_steps, steps_per_epoch)
        filled = {k: v for k, v in kwargs.items() if k in FILLED.get(cfg.name, ())}
        # Built while the groups still hold the base lr: torch records it as 'initial_lr'.
        self.scheduler: Any = scheduler_factory(cfg.name)(optimizer, **{**kwargs, **cfg.kwargs, **filled})
        # What the torch scheduler set at construction: where the main schedule starts.
        self.main_start_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.batches = 0  # after_batch calls so far
        self.epochs = 0  # after_epoch calls so far
        if self.warmup_steps:
            self._set_lrs(self._warmup_lrs(0))

    # ------------------------------------------------------------------ stepping

    def _warmup_lrs(self, batch: int) -> list[float]:
        frac = self.warmup_start_factor + (1.0 - self.warmup_start_factor) * batch / self.warmup_steps
        return [lr * frac for lr in self.base_lrs]

    def _set_lrs(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def after_batch(self) -> None:
        """Call after every optimizer.step()."""
        self.batches += 1
        if self.batches < self.warmup_steps:
            self._set_lrs(self._warmup_lrs(self.batches))
        elif self.batches == self.warmup_steps:
            self._set_lrs(self.main_start_lrs)
        elif self.per_batch and self.batches - self.warmup_steps <= self.main_steps:
            # The bound keeps OneCycleLR from raising if called past the planned length.
            self.scheduler.step()

    def rates(self, n: int) -> list[float]:
        """The rates of the next `n` batches, leaving the schedule after them: what `n` rounds
        of `lr()` then `after_batch()` give and do. Past the warm-up a per-epoch schedule only
        counts batches, so a fused group's interval costs one call per run, not one per batch."""
        if not self.per_batch and self.batches >= self.warmup_steps:
            self.batches += n
            return [self.lr()] * n
        out = []
        for _ in range(n):
            out.append(self.lr())
            self.after_batch()
        return out

    def after_epoch(self, val_loss: float | None) -> None:
        """Call at every epoch end. `plateau` steps on `val_loss`; without a validation split
        (val_loss None) it cannot judge progress, so it does not step and the lr stays put."""
        self.epochs += 1
        if self.per_batch or self.scheduler is None or self.epochs <= self.warmup_epochs:
            return
        if self.name == "plateau":
            if val_loss is not None:
                self.scheduler.step(val_loss)
        else:
            self.scheduler.step()

    def lr(self) -> float:
        """The learning rate the next batch will use (param group 0)."""
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        """Warm-up position, the torch scheduler's state and the current lrs: plain Python
        values only, so it loads with torch.load(weights_only=True)."""
        return {
            "name": self.name,
            "batches": self.batches,
            "epochs": self.epochs,
            "lrs": [float(g["lr"]) for g in self.optimizer.param_groups],
            "scheduler": copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"schedule state is for {state.get('name')!r}, not {self.name!r}")
        self.batches, self.epochs = int(state["batches"]), int(state["epochs"])
        if self.scheduler is not None and state["scheduler"] is not None:
            # A copy: CyclicLR.load_state_dict pops keys from the dict it is given.
            self.scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))
        # Chainable torch schedulers read the group's current lr, so restore it exactly
        # (also when the optimizer's own state was not loaded).
        self._set_lrs([float(lr) for lr in state["lrs"]])


# ---------------------------------------------------------------------- validation


def scheduler_kwargs_error(
    cfg: SchedulerConfig, epochs: int, optimizer: OptimizerConfig | None = None
) -> str | None:
    """Why `cfg` cannot schedule a run of `epochs` epochs, or None when it can. `optimizer`
    (when given) is the run's own, which matters e.g. for cycle_momentum."""
    if registry.registry().find("scheduler", cfg.name) is None:
        return registry.registry().unknown_message("scheduler", cfg.name)
    allowed = allowed_kwargs(cfg.name)
    for key in cfg.kwargs:
        if key in FILLED.get(cfg.name, ()):
            return f"scheduler {cfg.name!r} sets {key!r} itself (from the run); remove it"
        if key not in allowed:
            return unknown_kwarg_error(key, allowed, f"scheduler {cfg.name!r}")
    if cfg.warmup_epochs >= epochs:
        return (
            f"warmup_epochs = {cfg.warmup_epochs:g} leaves no epochs for the scheduler "
            f"(the run has {epochs} epochs): set scheduler.warmup_epochs below {epochs}, "
            f"or train.epochs to at least {math.floor(cfg.warmup_epochs) + 1}"
        )
    return _dry_run_error(cfg, epochs, optimizer)


def _dummy_optimizer(optimizer: OptimizerConfig | None) -> Optimizer:
    from optlab.training.optim import build_optimizer

    param = torch.zeros(1, requires_grad=True)
    if optimizer is not None:
        # A matrix and a vector, so a matrix-only optimizer builds too (with its auxiliary
        # AdamW: the schedule then drives both, as in training).
        params = [torch.zeros(2, 2, requires_grad=True), torch.zeros(2, 2, requires_grad=True), param]
        try:
            return build_optimizer(params, optimizer, "cpu")
        except (ValueError, TypeError, RuntimeError, KeyError, OptlabError, SystemExit):
            pass  # reported by the optimizer check; judge the scheduler on its own
    return torch.optim.SGD([param], lr=optimizer.lr if optimizer else 0.01)


def _dry_run_error(cfg: SchedulerConfig, epochs: int, optimizer: OptimizerConfig | None) -> str | None:
    """Run the whole schedule on a dummy parameter: torch validates many arguments only when
    stepping, and a gamma > 1 or a negative factor shows up as a bad lr."""
    opt = _dummy_optimizer(optimizer)
    steps = DRY_RUN_STEPS_PER_EPOCH
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            schedule = LRSchedule(opt, cfg, epochs, steps)
            for epoch in range(min(epochs, DRY_RUN_MAX_EPOCHS)):
                for step in range(steps):
                    lr = schedule.lr()
                    if not math.isfinite(lr) or lr < 0:
                        when = f"epoch {epoch + 1}" + (f", batch {step + 1}" if schedule.per_batch else "")
                        return f"scheduler {cfg.name!r} drives the learning rate to {lr:g} ({when})"
                    # A closure, for optimizers that need one (torch types it as returning float).
                    opt.step(lambda: torch.zeros(()))  # type: ignore[arg-type,return-value]
                    schedule.after_batch()
                schedule.after_epoch(1.0)
        except (ValueError, TypeError, KeyError, ZeroDivisionError, OverflowError, RuntimeError) as exc:
            return f"invalid arguments for scheduler {cfg.name!r}: {exc}"
        except SystemExit as exc:  # a plugin's sys.exit(): its error, not optlab's exit
            entry = registry.get("scheduler", cfg.name)
            if entry.source.origin == "builtin" and optimizer is not None:  # the optimizer's step, then
                entry = registry.get("optimizer", optimizer.name)
            who = f"{entry.kind} {entry.name!r} ({entry.source.describe()})"
            return registry.exit_message(who, exc, "in a trial schedule")
    return None
