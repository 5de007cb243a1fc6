"""The LR range test: one run's model, initial weights and data order, a learning rate that
grows geometrically each step, and the loss after each step.

It builds its trainer exactly as `compare` does (so the fingerprints match), with schedulers
and early stopping off, and drives the steps itself: the learning rate is set on every step,
the losses go into a device buffer read once per chunk of steps (no per-step host sync; steps
past a stop inside a chunk are computed and dropped), each step is the trainer's own
(`Stepper`: clipping, L1, mixed precision, parameter groups), and nothing outlives the test: the
model and optimizer are its own, and the process's random-number state is put back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from optlab import registry
from optlab.data.datasets import DatasetBundle
from optlab.errors import OptlabError
from optlab.registry import plugin_fingerprint
from optlab.spec import ResolvedRun, SchedulerConfig, provenance
from optlab.training.divergence import describe, exceeds, first_non_finite
from optlab.training.lr_suggest import debiased_ema, points_per_decade, smoothing_beta
from optlab.training.trainer import Trainer

LossKind = Literal["train", "val"]
StopReason = Literal["diverged", "end_lr", "data_exhausted"]
CHUNK = 10  # steps between host reads of the loss buffer
MIN_STEPS = 10


class RangeTestError(OptlabError):
    """The test cannot run for this configuration (bad ladder, an optimizer it cannot drive)."""


@dataclass(frozen=True)
class RangeTestSettings:
    start: float = 1e-7
    end: float = 10.0
    steps: int = 100
    loss: LossKind = "train"
    stop_factor: float = 4.0  # stop when the smoothed loss exceeds this many times its best; 0: never

    def check(self) -> None:
        if not (self.start > 0 and self.end > 0):
            raise RangeTestError(f"--start {self.start:g} and --end {self.end:g} must both be > 0")
        if self.start >= self.end:
            raise RangeTestError(f"--start {self.start:g} must be below --end {self.end:g}")
        if self.steps < MIN_STEPS:
            raise RangeTestError(f"--steps {self.steps}: at least {MIN_STEPS} steps are needed to read a curve")
        if self.stop_factor < 0 or (0 < self.stop_factor <= 1):
            raise RangeTestError(f"--stop-factor {self.stop_factor:g}: must be > 1, or 0 to never stop early")


def lr_ladder(start: float, end: float, steps: int) -> list[float]:
    """lr_i = start * (end/start)^(i/(n-1)), with both ends exactly as given."""
    ratio = end / start
    ladder = [start * ratio ** (i / (steps - 1)) for i in range(steps)]
    ladder[0], ladder[-1] = start, end
    return ladder


@dataclass
class RangeTestCurve:
    run: str
    seed: int
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped: StopReason
    detail: str
    init_fingerprint: str
    data_fingerprint: str
    plugin_fingerprint: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)  # where each registered name came from
    notes: list[str] = field(default_factory=list)

    def points(self) -> list[dict[str, float]]:
        return [
            {"lr": lr, "loss": loss, "smoothed": s}
            for lr, loss, s in zip(self.lrs, self.losses, self.smoothed, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("lrs", "losses", "smoothed"):
            doc.pop(key)
        doc["points"] = self.points()
        return doc


def check_optimizer(spec: ResolvedRun) -> list[str]:
    """Notes for optimizers whose lr means something else; an error for those it cannot drive."""
    entry = registry.get("optimizer", spec.optimizer.name)
    if entry.has("needs_closure"):
        raise RangeTestError(
            f"run {spec.name!r}: optimizer {spec.optimizer.name!r} needs a closure (it evaluates the loss "
            "several times per step); the range test takes one loss per learning rate and cannot drive it"
        )
    if entry.has("lr_is_multiplier"):
        return [
            f"optimizer {spec.optimizer.name!r} treats lr as a multiplier of its own step-size estimate: "
            "the curve is against that multiplier, not a learning rate in the usual sense"
        ]
    return []


def range_test_spec(spec: ResolvedRun) -> ResolvedRun:
    """The run as the test trains it: constant lr (the ladder sets it), no early stopping."""
    return spec.model_copy(update={"scheduler": SchedulerConfig(name="constant"), "early_stopping": None})


@contextlib.contextmanager
def _own_random_state() -> Iterator[None]:
    """Building a trainer seeds torch's global generators (as `compare` does): put them back."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _val_loss(trainer: Trainer, out: torch.Tensor) -> None:
    """The mean validation loss written into the 0-d tensor `out` (on the device, no sync), at
    the weights the run would be evaluated at (a schedule-free optimizer's eval() point)."""
    data, spec = trainer.data, trainer.spec
    trainer.optimizer_mode(training=False)
    trainer.model.eval()
    total = torch.zeros((), device=data.x_val.device, dtype=torch.float64)
    with torch.inference_mode():
        for start in range(0, data.x_val.shape[0], spec.eval_batch_size):
            xb = data.x_val[start : start + spec.eval_batch_size]
            yb = data.y_val[start : start + spec.eval_batch_size]
            with trainer.autocast():
                total += trainer.loss_fn(trainer.forward(xb).float(), yb).double() * xb.shape[0]
    trainer.model.train()
    trainer.optimizer_mode(training=True)
    out.copy_(total / data.x_val.shape[0])


def run_range_test(
    spec: ResolvedRun, data: DatasetBundle, device: str, settings: RangeTestSettings
) -> RangeTestCurve:
    settings.check()
    notes = check_optimizer(spec)
    if settings.loss == "val" and data.x_val.shape[0] == 0:
        raise RangeTestError(f"run {spec.name!r}: --loss val needs a validation split (data.val_fraction > 0)")
    with _own_random_state():
        curve = _climb(Trainer(range_test_spec(spec), data, device), settings, notes)
    # What `compare` records: the run's own scheduler counts, not the constant one of the test.
    curve.provenance = provenance(spec)
    curve.plugin_fingerprint = plugin_fingerprint(curve.provenance)
    return curve


def _climb(trainer: Trainer, settings: RangeTestSettings, notes: list[str]) -> RangeTestCurve:
    spec = trainer.spec
    ladder = lr_ladder(settings.start, settings.end, settings.steps)
    beta = smoothing_beta(points_per_decade(ladder))
    budget = trainer.steps_per_epoch * spec.epochs  # the run's own data budget, never more
    groups = trainer.optimizer.param_groups
    base = groups[0]["lr"]
    scales = [g["lr"] / base for g in groups]  # groups keep their lr ratios (e.g. a head at 10x)
    buffer = torch.zeros(CHUNK, device=trainer.device)
    # The run's own batches in the run's own order, epoch after epoch, as `advance` slices them.
    batches = (batch for epoch in range(1, spec.epochs + 1) for batch in trainer.batches(epoch))
    lrs: list[float] = []
    losses: list[float] = []
    stopped: StopReason | None = None
    detail = ""
    avg, best = 0.0, float("inf")
    trainer.random.apply()  # dropout draws as in the run itself (CPU, and CUDA on a GPU)
    trainer.model.train()
    trainer.optimizer_mode(training=True)  # schedule-free: train() before training steps
    step = 0
    while stopped is None:
        n = min(CHUNK, len(ladder) - step, budget - step)
        if n <= 0:
            stopped = "end_lr" if step >= len(ladder) else "data_exhausted"
            break
        for i in range(n):
            xb, yb = next(batches)  # n never passes the budget: the run's batches last
            for group, scale in zip(groups, scales, strict=True):
                group["lr"] = ladder[step + i] * scale
            loss, _ = trainer.train_step(xb, yb)  # the trainer's own step: clipping, L1, AMP, groups
            if settings.loss == "val":
                _val_loss(trainer, buffer[i])
            else:
                buffer[i] = loss.detach()
        chunk = buffer[:n].tolist()  # the one host sync of this chunk
        bad = first_non_finite(chunk)
        for i, value in enumerate(chunk):
            lr = ladder[step + i]
            if bad == i:
                stopped, detail = "diverged", f"non-finite loss ({value}) at lr {lr:.3g}"
                break
            avg = beta * avg + (1.0 - beta) * value
            smoothed = avg / (1.0 - beta ** (len(losses) + 1))
            lrs.append(lr)
            losses.append(value)
            if exceeds(smoothed, best, settings.stop_factor):
                stopped = "diverged"
                detail = describe(smoothed, best, settings.stop_factor, "the best") + f" at lr {lr:.3g}"
                break
            best = min(best, smoothed)
        step += n
    if stopped == "data_exhausted":
        epochs = f"{spec.epochs} epoch{'s' if spec.epochs != 1 else ''}"
        detail = f"the run's {budget} steps ({epochs}) ended before lr reached {settings.end:g}"
    elif stopped == "end_lr":
        detail = f"reached --end {settings.end:g}"
    return RangeTestCurve(
        run=spec.name,
        seed=spec.seed,
        lrs=lrs,
        losses=losses,
        smoothed=[float(v) for v in debiased_ema(losses, beta)],
        stopped=stopped,
        detail=detail,
        init_fingerprint=trainer.init_fingerprint,
        data_fingerprint=trainer.data_fingerprint,
        plugin_fingerprint=trainer.plugin_fingerprint,
        provenance=trainer.provenance,
        # check_optimizer's note says what a multiplier means for the curve: the trainer's
        # shorter one about the same thing would only repeat it.
        notes=notes + [n for n in trainer.notes if not n.startswith("lr is a multiplier")],
    )
