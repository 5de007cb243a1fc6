"""Each run's own random states: interleaved runs draw as if each ran alone, on every generator
it uses (the CPU's here; a CUDA device's where there is one), and the outer states are kept."""

from __future__ import annotations

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.events import EpochEnded
from optlab.training.rng import Generator, RunRandomState, generators
from optlab.training.runner import Runner


def draws(state: RunRandomState, device_gen: torch.Generator | None, n: int = 3) -> list[float]:
    with state.active():
        out = torch.rand(n).tolist()
        if device_gen is not None:
            out += torch.rand(n, generator=device_gen).tolist()
    return out


def test_interleaved_runs_draw_as_if_alone_and_leave_the_outer_states_alone() -> None:
    # A second generator object stands for a CUDA device's: the swapping logic is the same.
    device = torch.Generator()
    sources = [*generators(torch.device("cpu")),
               Generator("cuda", device.get_state, device.set_state)]

    def fresh(seed: int) -> RunRandomState:
        torch.manual_seed(seed)
        device.manual_seed(seed)
        return RunRandomState(sources)

    alone = {seed: [draws(r, device) for _ in range(3)] for seed in (1, 2) for r in [fresh(seed)]}
    torch.manual_seed(99)
    device.manual_seed(99)
    outer_cpu, outer_device = torch.get_rng_state(), device.get_state()
    a, b = fresh(1), fresh(2)
    torch.set_rng_state(outer_cpu)
    device.set_state(outer_device)
    mixed = {1: [], 2: []}
    for _ in range(3):
        mixed[1].append(draws(a, device))
        mixed[2].append(draws(b, device))
    assert mixed == alone and alone[1] != alone[2]
    assert torch.equal(torch.get_rng_state(), outer_cpu) and torch.equal(device.get_state(), outer_device)


def test_a_saved_state_resumes_the_same_draws() -> None:
    torch.manual_seed(5)
    run = RunRandomState(generators(torch.device("cpu")))
    draws(run, None)
    saved = run.get("cpu")
    assert run.get("cuda") is None  # a CPU run has no CUDA state to save
    expected = draws(run, None)
    other = RunRandomState(generators(torch.device("cpu")))
    other.set("cpu", saved)
    other.set("cuda", torch.zeros(8, dtype=torch.uint8))  # no CUDA generator: ignored
    assert draws(other, None) == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_identical_runs_interleaved_on_a_gpu_give_identical_histories() -> None:
    loaded = load_preset_text(
        """
name = "cuda-rng"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [64]
dropout = 0.5
[train]
epochs = 2
batch_size = 32
seed = 1
[[runs]]
name = "a"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "b"
optimizer = { name = "sgd", lr = 0.05 }
"""
    )
    data = load_dataset(loaded.preset.data, "cuda")

    class Collect:
        def __init__(self) -> None:
            self.events: list = []

        def handle(self, event) -> None:
            self.events.append(event)

    sink = Collect()
    Runner(loaded.resolved_runs("cuda"), data, "cuda", [sink]).run()
    history = {r: [(e.train_loss, e.val_loss) for e in sink.events if isinstance(e, EpochEnded) and e.run == r]
               for r in ("a", "b")}
    assert history["a"] == history["b"] and len(history["a"]) == 2
