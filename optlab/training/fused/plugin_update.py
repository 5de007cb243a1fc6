"""A plugin optimizer's own vectorized update (`registry.optimizer(..., vectorized=fn)`), over
its family's rows of a fusion group's flat buffer.

`fn(p, g, state, hyper, lr, step)` updates n runs at once in place: `p` and `g` are their [n, P]
parameter and gradient rows, `state` a dict the function keeps its [n, P] tensors in (empty at
the first step; it creates them), `hyper(key)` a hyperparameter of the runs' param groups as a
tensor broadcasting over [n, P] ([n, 1], or [n, P] where a run's param groups differ), `lr` the
step's rates ([n, 1]) and `step` the step count (1 at the first). Each tensor it keeps becomes,
in a checkpoint, the state entry of that name of each parameter's torch optimizer state (its
segment, in the parameter's shape), beside `step`, so the checkpoint resumes (unfused, as a
resumed run trains) with the optimizer's own state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import torch

from optlab import registry
from optlab.training.fused.vector_optim import PLUGIN, VectorUpdate


class VectorizedStep(Protocol):
    """What a plugin registers as `vectorized=` (the registry, below torch, keeps it untyped)."""

    def __call__(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor],
                 hyper: Callable[[str], torch.Tensor], lr: torch.Tensor, step: int) -> None: ...


def vectorized_of(name: str) -> VectorizedStep:
    """The update registered for a plugin family ("plugin:<optimizer name>")."""
    entry = registry.registry().get("optimizer", name.removeprefix(PLUGIN))
    fn = entry.extra.get("vectorized")
    if not callable(fn):
        raise ValueError(f"optimizer {entry.name!r} registered no vectorized update")
    return cast(VectorizedStep, fn)


class PluginUpdate(VectorUpdate):
    def __init__(self, name: str, flat: torch.Tensor, grad: torch.Tensor, runs: slice,
                 hypers: list[list[dict[str, Any]]], shapes: list[torch.Size]) -> None:
        super().__init__(name, flat, grad, runs, hypers, shapes)
        self.state.pop("sign", None)  # `maximize`, if it has one, is the plugin's to honour
        self.fn = vectorized_of(name)

    def carry(self, source: VectorUpdate, old: int, new: int) -> None:
        for key in source.state:  # the state the function made so far
            if key not in self.state:
                self.state[key] = torch.zeros_like(self.p)
        super().carry(source, old, new)

    @torch.no_grad()
    def step(self, i: int) -> None:
        self.steps += 1
        self.fn(self.p, self.g, self.state, self.h, self._lr[i].to(self.p.dtype), self.steps)
        # Checked here, inside the group's step (its members fail with one line), not where a
        # checkpoint or a re-formed stack would first trip over it.
        for key, value in self.state.items():
            if not isinstance(value, torch.Tensor) or value.shape != self.p.shape or value.device != self.p.device:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"optimizer {self.name.removeprefix(PLUGIN)!r}: its vectorized update kept state "
                                 f"{key!r} as {shape}; expected a tensor shaped like p, {tuple(self.p.shape)}")

    def torch_state(self, j: int, i: int) -> dict[str, torch.Tensor]:
        start = sum(self.sizes[:j])
        own = {k: v[i, start : start + self.sizes[j]].reshape(self.shapes[j]).clone() for k, v in self.state.items()}
        return {"step": torch.tensor(float(self.steps)), **own}
