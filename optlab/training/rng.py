"""Each run's own random-number states, swapped in while it trains.

Dropout draws from the process's generators: the CPU one, and on CUDA the device's own. Runs
interleaved in one process would otherwise take turns drawing from one stream, so what a run
sees would depend on its neighbours (and a checkpoint could hold only the shared state). A
`RunRandomState` keeps one state per generator for its run and swaps them in around each chunk
of training, leaving the outer states exactly as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Generator:
    """One of the process's generators, as a state getter and setter."""

    name: str
    get: Callable[[], torch.Tensor]
    set: Callable[[torch.Tensor], None]


def generators(device: torch.device) -> list[Generator]:
    """The generators a run on `device` draws from: the CPU's, and its CUDA device's."""
    found = [Generator("cpu", torch.get_rng_state, torch.set_rng_state)]
    if device.type == "cuda":
        found.append(Generator(
            "cuda", lambda: torch.cuda.get_rng_state(device), lambda s: torch.cuda.set_rng_state(s, device)
        ))
    return found


class RunRandomState:
    """The states of one run, taken from the generators as they are now (right after the run
    seeded them, so every run starts from its own seed's states)."""

    def __init__(self, sources: list[Generator]) -> None:
        self.sources = sources
        self.states = {g.name: g.get() for g in sources}

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        outer = {g.name: g.get() for g in self.sources}
        for g in self.sources:
            g.set(self.states[g.name])
        try:
            yield
        finally:
            for g in self.sources:
                self.states[g.name] = g.get()
                g.set(outer[g.name])

    def apply(self) -> None:
        """Put this run's states into the generators and leave them there (the caller keeps
        and restores the outer ones, e.g. with torch.random.fork_rng)."""
        for g in self.sources:
            g.set(self.states[g.name])

    def get(self, name: str) -> torch.Tensor | None:
        state = self.states.get(name)
        return None if state is None else state.clone()

    def set(self, name: str, state: torch.Tensor | None) -> None:
        """Put back a saved state (from a checkpoint); one this run has no generator for is ignored."""
        if state is not None and name in self.states:
            self.states[name] = state.clone()
