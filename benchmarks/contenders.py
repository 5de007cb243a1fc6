"""In-process contenders of the benchmark: the data, the tutorial model and the timed loops.

Every contender trains the PyTorch "Optimizing Model Parameters" tutorial model (784-512-512-10
ReLU MLP, SGD lr 1e-3, batch 64) on the same synthetic FashionMNIST IDX files, read through
torchvision's real `FashionMNIST` class.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
BATCH = 64
LR = 1e-3

# The four configurations of the side-by-side contender (d), all on the tutorial model.
FOUR_RUNS = (
    ("sgd", '{ name = "sgd", lr = 1e-3 }'),
    ("sgd-momentum", '{ name = "sgd", lr = 1e-2, momentum = 0.9 }'),
    ("adam", '{ name = "adam", lr = 1e-3 }'),
    ("rmsprop", '{ name = "rmsprop", lr = 1e-4 }'),
)


@dataclass
class Sizes:
    n_train: int
    n_test: int
    timed_samples: int  # training samples per timed repeat of (a), (b), (c)
    repeats: int
    warmup_steps: int
    side_by_side_train: int  # training samples per run for (d) and (e)
    matmul_n: int
    rss_chunks: int  # reporting intervals each run trains in the RSS children

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if quick:
            return cls(3000, 500, 3000, 1, 5, 1000, 512, 2)
        # Short repeats, many of them: on a shared machine a burst of load then spoils one
        # repeat of each contender instead of one whole contender.
        return cls(60000, 10000, 10000, 7, 100, 5000, 2048, 3)


@dataclass
class Timing:
    samples: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def samples_per_s(self) -> float:
        """The median of the repeats' rates."""
        return statistics.median(n / s for n, s in zip(self.samples, self.seconds, strict=True))

    @property
    def best_samples_per_s(self) -> float:
        return max(n / s for n, s in zip(self.samples, self.seconds, strict=True))


# A contender: run(warm-up steps, or None for a timed repeat) -> (seconds, samples trained).
Loop = Callable[[int | None], tuple[float, int]]


def write_dataset(root: Path, n_train: int, n_test: int) -> None:
    """FashionMNIST-format IDX files, via the same writer the tests use."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        fixtures = importlib.import_module("idx_fixtures")
    finally:
        sys.path.remove(str(REPO / "tests"))
    fixtures.write_mnist_idx(root, "FashionMNIST", n_train=n_train, n_test=n_test)


def tutorial_model(seed: int = 0) -> nn.Module:
    """The tutorial's NeuralNetwork: Flatten, then Linear-ReLU-Linear-ReLU-Linear."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def train_flops_per_sample(model: nn.Module) -> float:
    """~6 FLOPs per parameter per sample: 2 forward, 4 backward (input and weight grads)."""
    return 6.0 * sum(p.numel() for p in model.parameters())


def matmul_peak_gflops(n: int, device: torch.device, repeats: int = 5) -> float:
    """Best float32 n x n matmul rate (GFLOP/s), the machine's practical peak."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------ (a) tutorial


def tutorial_loop(root: Path, max_samples: int, device: torch.device) -> Loop:
    """The tutorial's train_loop as published: ToTensor + DataLoader(batch_size=64), SGD 1e-3,
    `loss.item()` every 100 batches (the tutorial prints it). Returns run(steps) -> seconds."""
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import ToTensor

    training_data = datasets.FashionMNIST(root=str(root), train=True, download=False, transform=ToTensor())
    loss_fn = nn.CrossEntropyLoss()

    def run(steps: int | None) -> tuple[float, int]:
        model = tutorial_model().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        dataloader = DataLoader(training_data, batch_size=BATCH)
        limit = steps if steps is not None else -(-max_samples // BATCH)
        sync(device)
        t0 = time.perf_counter()
        model.train()
        n = 0
        for batch, (X, y) in enumerate(dataloader):
            X, y = X.to(device), y.to(device)
            pred = model(X)
            loss = loss_fn(pred, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if batch % 100 == 0:
                loss.item()
            n += len(X)
            if batch + 1 >= limit:
                break
        sync(device)
        return time.perf_counter() - t0, n

    return run


# ------------------------------------------------------------------------------------ (b) preloaded


def preloaded_loop(root: Path, max_samples: int, device: torch.device) -> Loop:
    """The same loop hand-written over the data preloaded as one tensor on the device, batches
    sliced from a randperm, `zero_grad(set_to_none=True)`, no per-step host sync."""
    from torchvision import datasets

    ds = datasets.FashionMNIST(root=str(root), train=True, download=False)
    x = ds.data.unsqueeze(1).to(device).float().div_(255.0)
    y = ds.targets.to(device)
    loss_fn = nn.CrossEntropyLoss()

    def run(steps: int | None) -> tuple[float, int]:
        model = tutorial_model().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        n = min(max_samples, len(x))
        limit = steps if steps is not None else -(-n // BATCH)
        sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), device=device)
        model.train()
        for batch in range(limit):
            idx = perm[batch * BATCH : (batch + 1) * BATCH]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if batch % 100 == 0:
                loss.detach()  # kept on the device: no host sync
        sync(device)
        return time.perf_counter() - t0, limit * BATCH

    return run


# ------------------------------------------------------------------------------------ (c), (d) engine


def preset_text(root: Path, runs: tuple[tuple[str, str], ...], epochs: int, train_limit: int | None) -> str:
    """A preset equal to presets/tutorial-fashion-mnist.toml, on the synthetic files, except that
    it shuffles (the default), as the hand-written loop (b) does: both slice batches from a
    permutation, so the comparison is like for like."""
    lines = [
        'name = "bench"',
        "[data]",
        'dataset = "fashion-mnist"',
        f'root = "{root}"',
        "download = false",
        "val_fraction = 0.0",
        "normalize = false",
    ]
    if train_limit is not None:
        lines.append(f"train_limit = {train_limit}")
    lines += [
        "[model]",
        'name = "mlp"',
        "hidden = [512, 512]",
        'activation = "relu"',
        "[train]",
        f"epochs = {epochs}",
        f"batch_size = {BATCH}",
        'loss = "cross_entropy"',
        "seed = 0",
    ]
    for name, optimizer in runs:
        lines += ["[[runs]]", f'name = "{name}"', f"optimizer = {optimizer}"]
    return "\n".join(lines) + "\n"


def load_engine(text: str, device: str) -> tuple[list[Any], Any]:
    from optlab.experiment import prepare
    from optlab.preset.loader import load_preset_text

    specs, data, _ = prepare(load_preset_text(text, "bench"), device)
    return specs, data


def engine_loop(root: Path, max_samples: int, device: torch.device) -> Loop:
    """optlab's Trainer on the tutorial preset. Two planned epochs, so the timed first epoch
    is pure training (no validation split; the test set is evaluated only at a run's end)."""
    from optlab.training.trainer import Trainer

    specs, data = load_engine(preset_text(root, (("tutorial-sgd", '{ name = "sgd", lr = 1e-3 }'),), 2, None),
                              device.type)

    def run(steps: int | None) -> tuple[float, int]:
        trainer = Trainer(specs[0], data, device)
        n = min(max_samples, trainer.n_train)
        limit = steps if steps is not None else min(trainer.steps_per_epoch, -(-n // BATCH))
        sync(device)
        t0 = time.perf_counter()
        while trainer.step < limit:
            trainer.advance()
        sync(device)
        return time.perf_counter() - t0, trainer.samples_seen

    return run


def side_by_side(root: Path, train_limit: int, device: torch.device) -> dict[str, Loop]:
    """(d): the four configurations in one Runner, and the same four one Runner after another.
    Both include each run's end (test-set evaluation and metrics), as a real comparison does."""
    from optlab.training.runner import Runner

    specs, data = load_engine(preset_text(root, FOUR_RUNS, 1, train_limit), device.type)
    samples = len(specs) * len(data.x_train)

    # Warm-up calls (steps given) are skipped: contender (c) already warms the same code.
    def together(steps: int | None) -> tuple[float, int]:
        if steps is not None:
            return 0.0, 0
        t0 = time.perf_counter()
        Runner(specs, data, device.type).run()
        sync(device)
        return time.perf_counter() - t0, samples

    def one_after_another(steps: int | None) -> tuple[float, int]:
        if steps is not None:
            return 0.0, 0
        t0 = time.perf_counter()
        for spec in specs:
            Runner([spec], data, device.type).run()
        sync(device)
        return time.perf_counter() - t0, samples

    return {"side_by_side": together, "sequential": one_after_another}


def time_interleaved(
    contenders: dict[str, Loop], repeats: int, warmup_steps: int, between: Callable[[], object] = lambda: None
) -> dict[str, Timing]:
    """Warm each contender up, then time them round-robin `repeats` times, so a change in the
    machine's load (other processes) hits every contender alike; medians are reported.
    `between` runs after each round (the matmul peak is re-measured there)."""
    for run in contenders.values():
        run(warmup_steps)
    timings = {name: Timing() for name in contenders}
    for repeat in range(repeats):
        # Reversed order every other round (ABBA): a steady drift in load cancels in pairs.
        order = list(contenders.items()) if repeat % 2 == 0 else list(reversed(contenders.items()))
        for name, run in order:
            seconds, samples = run(None)
            timings[name].seconds.append(seconds)
            timings[name].samples.append(samples)
        rates = ", ".join(f"{name} {t.samples[-1] / t.seconds[-1]:,.0f}" for name, t in timings.items())
        print(f"[bench] repeat {repeat + 1}/{repeats} samples/s: {rates}", file=sys.stderr, flush=True)
        between()
    return timings
