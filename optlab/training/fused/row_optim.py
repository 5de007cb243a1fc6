"""A family's update through torch's own fused optimizer kernels, one call per run over its row
of the flat buffer: the arithmetic of the run's own torch optimizer, element for element.

optlab builds SGD, Adam, AdamW and Adagrad with `fused=True` where torch has the kernel (on CPU
and CUDA); such a run's update is one `torch._fused_<family>_` call over its parameters with its
hyperparameters as Python numbers. Here the same call takes the run's row of the [K, P] buffer
(or, where its param groups differ, e.g. no weight decay on biases, one list of row segments
per group), with the interval's rate for that step: no per-run tensors of hyperparameters, one
kernel pass per run, and the same floats as the unfused run given the same gradients. Families
or devices without a fused kernel (RMSprop) use `VectorUpdate`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from optlab.training.fused.vector_optim import VectorUpdate, _scalar

KERNELS = {"sgd", "adam", "adagrad"}


def uses_fused_kernel(name: str, hypers: list[list[dict[str, Any]]]) -> bool:
    """Whether every run of a family's slice trains with torch's fused kernel (`fused=True`)."""
    return name in KERNELS and all(h.get("fused") for row in hypers for h in row)


class RowUpdate(VectorUpdate):
    """`VectorUpdate`'s state layout (so checkpoints are written the same way), stepped by
    torch's fused kernels, one call per run and param group."""

    def __init__(self, name: str, flat: torch.Tensor, grad: torch.Tensor, runs: slice,
                 hypers: list[list[dict[str, Any]]], shapes: list[torch.Size]) -> None:
        super().__init__(name, flat, grad, runs, hypers, shapes)
        self.state.pop("sign", None)  # the kernels take `maximize` themselves
        # The state's step count, shared by every call (the runs step together); torch's own
        # fused step adds 1 to it before the kernel, as `step` does here.
        self.step_count = torch.zeros((), dtype=torch.float32, device=self.p.device)
        # One kernel call per run and param group, everything but the rate bound in advance
        # (the step loop's Python is a share of a small model's step): (run, call(lr, first)).
        self.calls: list[tuple[int, Callable[[float, bool], None]]] = []
        offsets = [sum(self.sizes[:j]) for j in range(len(self.sizes))]
        for i in range(self.n):
            groups: dict[str, list[int]] = {}
            for j in range(len(shapes)):
                groups.setdefault(_group_key(hypers[j][i]), []).append(j)
            for members in groups.values():
                spans = _spans([(offsets[j], offsets[j] + self.sizes[j]) for j in members])
                rows = {key: [t[i, a:b] for a, b in spans] for key, t in self.state.items()}
                params, grads = [self.p[i, a:b] for a, b in spans], [self.g[i, a:b] for a, b in spans]
                self.calls.append((i, getattr(self, f"_bind_{name}")(hypers[members[0]][i], params, grads, rows)))

    def carry(self, source: VectorUpdate, old: int, new: int) -> None:
        super().carry(source, old, new)
        self.step_count.fill_(float(self.steps))

    def interval(self, rates: list[list[float]]) -> None:
        self._rates = rates  # Python floats: the kernels take the rate as a number

    @torch.no_grad()
    def step(self, i: int) -> None:
        self.steps += 1
        if self.name != "sgd":  # (SGD's kernel keeps no step count)
            self.step_count.add_(1)
        rates, first = self._rates[i], self.steps == 1
        for run, call in self.calls:
            call(rates[run], first)

    def _bind_sgd(self, h: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                  state: dict[str, list[torch.Tensor]]) -> Callable[[float, bool], None]:
        momentum = float(_scalar(h["momentum"], "momentum"))
        kernel = partial(torch._fused_sgd_, params, grads, state["momentum_buffer"] if momentum != 0 else [],
                         weight_decay=float(h["weight_decay"]), momentum=momentum, dampening=float(h["dampening"]),
                         nesterov=bool(h["nesterov"]), maximize=bool(h["maximize"]))
        return lambda lr, first: kernel(lr=float(lr), is_first_step=first)

    def _bind_adam(self, h: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                   state: dict[str, list[torch.Tensor]]) -> Callable[[float, bool], None]:
        amsgrad = bool(h["amsgrad"])
        kernel = partial(
            torch._fused_adamw_ if h["decoupled_weight_decay"] else torch._fused_adam_,
            params, grads, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"] if amsgrad else [],
            [self.step_count] * len(params), amsgrad=amsgrad, beta1=float(_scalar(h["beta1"], "beta1")),
            beta2=float(_scalar(h["beta2"], "beta2")), weight_decay=float(h["weight_decay"]), eps=float(h["eps"]),
            maximize=bool(h["maximize"]),
        )
        return lambda lr, first: kernel(lr=float(lr))

    def _bind_adagrad(self, h: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                      state: dict[str, list[torch.Tensor]]) -> Callable[[float, bool], None]:
        kernel = partial(torch._fused_adagrad_, params, grads, state["sum"], [self.step_count] * len(params),
                         lr_decay=float(h["lr_decay"]), weight_decay=float(h["weight_decay"]), eps=float(h["eps"]),
                         maximize=bool(h["maximize"]))
        return lambda lr, first: kernel(lr=float(lr))


def _group_key(h: dict[str, Any]) -> str:
    """Parameters of one torch param group share their hyperparameters (and so one call)."""
    return repr(sorted((k, v) for k, v in h.items() if k != "params"))


def _spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent [a, b) spans merged: one segment where a group's parameters lie side by side."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out
