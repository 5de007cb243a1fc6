"""The parts of one run, built in the one order that keeps runs comparable.

The order is the contract, which is why it lives in one function and not spread over a
constructor: the seed comes before the model is built (runs with one seed start identical),
the initial weights are fingerprinted and the run's random states taken before the model moves
to its device (the record does not depend on the device), and the loss scaler comes after the
mixed-precision dtype it depends on. `Trainer` builds its parts here; an engine that drives the
same steps its own way (the range test, a fused engine) gets the same parts and fingerprints.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from optlab import registry
from optlab.models.registry import apply_init, build_model
from optlab.training.losses import build_loss, n_outputs
from optlab.training.optim import build_optimizer
from optlab.training.rng import RunRandomState, generators
from optlab.training.schedulers import LRSchedule
from optlab.training.steps import Stepper

if TYPE_CHECKING:
    from torch import nn
    from torch.optim import Optimizer

    from optlab.data.datasets import DatasetBundle
    from optlab.spec import ResolvedRun
    from optlab.training.losses import LossFn

REPORTS_PER_EPOCH = 10
# A report is a host sync, an event for every front end to parse, and the runner's unit of
# interleaving: on a small dataset (18 steps an epoch for digits) ten a epoch would mean one
# per step, which costs the engine its "no per-step sync" and a live UI a flood of events.
MIN_STEPS_PER_REPORT = 4
CREATE_GRAPH_WARNING = r"Using backward\(\) with create_graph=True"

Autocast = Callable[[], contextlib.AbstractContextManager[object]]


def epoch_permutation(seed: int, epoch: int, n: int, shuffle: bool = True) -> torch.Tensor:
    """The data order of one epoch depends only on (seed, epoch): every run with the same
    seed sees the same order whatever its batch size, and a resumed run needs no state.
    Without shuffling it is the dataset's own order, every epoch (the PyTorch tutorial's
    DataLoader does not shuffle)."""
    if not shuffle:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def fingerprint_tensors(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class StepPlan:
    """How a run's data falls into steps: every engine must slice batches the same way, or the
    same seed would not mean the same data order."""

    n_train: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    log_every: int  # steps per reporting interval

    @classmethod
    def of(cls, spec: ResolvedRun, n_train: int) -> StepPlan:
        bs = spec.batch_size
        # A lone last sample would break batch norm: it joins the previous batch instead.
        steps_per_epoch = max(1, n_train // bs if n_train % bs == 1 else math.ceil(n_train / bs))
        log_every = spec.log_every or min(
            steps_per_epoch, max(MIN_STEPS_PER_REPORT, steps_per_epoch // REPORTS_PER_EPOCH)
        )
        return cls(n_train, bs, steps_per_epoch, steps_per_epoch * spec.epochs, log_every)

    def bounds(self, step_in_epoch: int) -> tuple[int, int]:
        """The slice of the epoch's order that step `step_in_epoch` (from 0) trains on; the
        epoch's last batch runs to the end (it holds a lone last sample)."""
        bs = self.batch_size
        end = self.n_train if step_in_epoch == self.steps_per_epoch - 1 else (step_in_epoch + 1) * bs
        return step_in_epoch * bs, end


@dataclass(frozen=True)
class Capabilities:
    """What the optimizer's registry entry asks of the loop."""

    # Schedule-free optimizers train at one point and evaluate at another (their average):
    # optimizer.train() before training steps, eval() before anything that reads the weights.
    train_eval: bool
    needs_closure: bool
    create_graph: bool  # Hessian estimates from the gradients' graph
    lr_is_multiplier: bool

    @classmethod
    def of(cls, optimizer_name: str) -> Capabilities:
        entry = registry.get("optimizer", optimizer_name)
        return cls(*(entry.has(c) for c in ("train_eval", "needs_closure", "create_graph", "lr_is_multiplier")))


def autocast_for(amp_dtype: torch.dtype | None) -> Autocast:
    """A context factory: CUDA autocast in `amp_dtype`, or nothing when mixed precision is off."""
    if amp_dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type="cuda", dtype=amp_dtype)


def amp_dtype(spec: ResolvedRun, device: torch.device, notes: list[str]) -> torch.dtype | None:
    if spec.amp == "off":
        return None
    if device.type != "cuda":
        notes.append(f"amp = {spec.amp!r} is off: mixed precision needs CUDA, this run is on CPU")
        return None
    return torch.bfloat16 if spec.amp == "bf16" else torch.float16


def data_fingerprint(spec: ResolvedRun, data: DatasetBundle, n_train: int) -> str:
    """The first epoch's order, the training tensor's shape and, for a file dataset, the bytes
    it was read from (so one changed byte shows)."""
    first_order = epoch_permutation(spec.seed, 1, n_train, spec.shuffle)
    order_and_shape = [first_order, torch.tensor(data.x_train.shape)]
    if data.files:
        files = hashlib.sha256("".join(f"{f['name']}:{f['sha256']}\n" for f in data.files).encode())
        order_and_shape.append(torch.tensor(list(files.digest()), dtype=torch.uint8))
    return fingerprint_tensors(order_and_shape)


@dataclass
class SeededModel:
    model: nn.Module
    init_fingerprint: str
    random: RunRandomState


def seeded_model(spec: ResolvedRun, data: DatasetBundle, device: torch.device) -> SeededModel:
    """The run's model from its seed, fingerprinted on the CPU, then moved to its device."""
    if device.type == "cuda":
        torch.manual_seed(spec.seed)
    else:
        # The CPU generator is all a CPU run draws from; torch.manual_seed would also queue a
        # lazy CUDA seeding with its caller's stack formatted (about 1 ms a run) on a CUDA build.
        torch.default_generator.manual_seed(spec.seed)
    model = build_model(spec.model, data.info.input_shape, n_outputs(data.info.task, data.info.n_classes, spec.loss))
    apply_init(model, spec.model.init)
    fingerprint = fingerprint_tensors(list(model.parameters()))
    # Dropout draws from this run's own generator states (CPU, and its CUDA device's), so
    # interleaving runs in one process (or resuming) never changes what a run sees.
    random = RunRandomState(generators(device))
    model = model.to(device)
    if device.type == "cuda" and spec.model.name in ("lenet", "cnn"):
        model = model.to(memory_format=torch.channels_last)
    return SeededModel(model, fingerprint, random)


@dataclass
class RunParts:
    """Everything one run trains with, built by `build_run_parts`."""

    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its compiled form
    init_fingerprint: str
    data_fingerprint: str
    random: RunRandomState
    loss_fn: LossFn
    optimizer: Optimizer
    schedule: LRSchedule
    capabilities: Capabilities
    amp_dtype: torch.dtype | None
    autocast: Autocast
    scaler: torch.amp.GradScaler
    stepper: Stepper
    notes: list[str]


def build_run_parts(spec: ResolvedRun, data: DatasetBundle, device: torch.device, plan: StepPlan) -> RunParts:
    notes: list[str] = []
    seeded = seeded_model(spec, data, device)
    model = seeded.model
    forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if spec.compile else model
    loss_fn = build_loss(spec.loss, data.info.task, spec.label_smoothing)
    optimizer = build_optimizer(model, spec.optimizer, device.type)
    schedule = LRSchedule(optimizer, spec.scheduler, spec.epochs, plan.steps_per_epoch)
    caps = Capabilities.of(spec.optimizer.name)
    if caps.create_graph:
        # torch warns of the parameter <-> gradient cycle; zero_grad(set_to_none=True) at
        # every step breaks it.
        warnings.filterwarnings("ignore", message=CREATE_GRAPH_WARNING, category=UserWarning)
    if caps.lr_is_multiplier:
        notes.append(f"lr is a multiplier of the optimizer's own estimate ({spec.optimizer.name})")
    dtype = amp_dtype(spec, device, notes)
    fp16 = dtype is torch.float16
    if fp16 and caps.needs_closure:
        notes.append("fp16 loss scaling is off: GradScaler cannot step an optimizer that needs a closure")
    scaler = torch.amp.GradScaler("cuda", enabled=fp16 and not caps.needs_closure)
    autocast = autocast_for(dtype)
    stepper = Stepper(spec, model, forward, loss_fn, optimizer, scaler, autocast,
                      needs_closure=caps.needs_closure, create_graph=caps.create_graph)
    return RunParts(
        model=model, forward=forward, init_fingerprint=seeded.init_fingerprint,
        data_fingerprint=data_fingerprint(spec, data, plan.n_train), random=seeded.random,
        loss_fn=loss_fn, optimizer=optimizer, schedule=schedule, capabilities=caps, amp_dtype=dtype,
        autocast=autocast, scaler=scaler, stepper=stepper, notes=notes,
    )
