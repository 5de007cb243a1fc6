"""Vectorized optimizer updates over stacked parameters, every hyperparameter a per-run tensor.

Each update follows torch.optim's own algorithm for its family (same formulas, same bias
corrections, the same order of operations where it matters) for runs [start, stop) of the
stack: SGD (momentum, dampening, nesterov, weight decay), Adam and AdamW (amsgrad, decoupled
weight decay), RMSprop (centered, momentum) and Adagrad (lr decay). Differences from a run's
own torch optimizer stay in the last bits of float32 (tests/unit/test_fused_optim.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

FAMILIES: dict[type, str] = {SGD: "sgd", Adam: "adam", AdamW: "adam", RMSprop: "rmsprop", Adagrad: "adagrad"}


def family(optimizer: Optimizer) -> str | None:
    """The vectorized family that reproduces `optimizer`, or None (a subclass may change the step)."""
    return FAMILIES.get(type(optimizer))


def group_of(optimizer: Optimizer) -> dict[int, dict[str, Any]]:
    """id(parameter) -> its param group's hyperparameters."""
    return {id(p): g for g in optimizer.param_groups for p in g["params"]}


class VectorUpdate:
    """One family's update for runs `runs` of the stacked `params`. `hypers[j][i]` is the torch
    param group (hyperparameters) of parameter j in the group's run i."""

    def __init__(self, name: str, params: list[torch.Tensor], runs: slice, hypers: list[list[dict[str, Any]]]) -> None:
        self.name = name
        self.params = params
        self.runs = runs
        self.hypers = hypers
        self.n = runs.stop - runs.start
        self.steps = 0
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in params]
        self._cache: dict[tuple[int, str, torch.dtype | None], torch.Tensor] = {}
        self._uniform: dict[tuple[int, str], bool | None] = {}
        for j, p in enumerate(params):
            if any(h.get("maximize") for h in hypers[j]):
                self.state[j]["sign"] = self._tensor(j, [-1.0 if h.get("maximize") else 1.0 for h in hypers[j]])
            self._init_state(j, p[runs])

    def _tensor(self, j: int, values: list[float], dtype: torch.dtype | None = None) -> torch.Tensor:
        p = self.params[j]
        shape = (self.n,) + (1,) * (p.dim() - 1)
        return torch.tensor(values, dtype=dtype or p.dtype, device=p.device).view(shape)

    def h(self, j: int, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Hyperparameter `key` of parameter j, one value per run, shaped to broadcast."""
        cached = self._cache.get((j, key, dtype))
        if cached is None:
            values = [float(_scalar(h[key], key)) for h in self.hypers[j]]
            cached = self._cache[(j, key, dtype)] = self._tensor(j, values, dtype)
        return cached

    def same(self, j: int, key: str) -> bool | None:
        """Whether hyperparameter `key` is set (nonzero, or true) for every run of the slice
        (True), for none (False), or for some (None). Where every run agrees, an update skips
        the `torch.where` between the two branches: fewer kernels a step, the same numbers."""
        known = self._uniform.get((j, key), ...)
        if known is ...:
            values = {bool(_scalar(h[key], key)) for h in self.hypers[j]}
            known = self._uniform[(j, key)] = values.pop() if len(values) == 1 else None
        return known

    def one_minus(self, j: int, key: str) -> torch.Tensor:
        """1 - hyperparameter, computed in float64 as torch does from Python floats (1 - 0.999
        in float32 loses digits)."""
        cached = self._cache.get((j, "1-" + key, None))
        if cached is None:
            cached = self._cache[(j, "1-" + key, None)] = (1 - self.h(j, key, torch.float64)).to(self.params[j].dtype)
        return cached

    def flags(self, j: int, key: str) -> torch.Tensor:
        return self.h(j, key, torch.bool)

    def _init_state(self, j: int, p: torch.Tensor) -> None:
        s = self.state[j]
        if self.name == "adam":
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            if any(h["amsgrad"] for h in self.hypers[j]):
                s["max_exp_avg_sq"] = torch.zeros_like(p)
        elif self.name == "rmsprop":
            s["square_avg"] = torch.zeros_like(p)
            s["momentum_buffer"], s["grad_avg"] = torch.zeros_like(p), torch.zeros_like(p)
        elif self.name == "adagrad":
            s["sum"] = torch.ones_like(p) * self.h(j, "initial_accumulator_value")
        elif self.name == "sgd":
            s["momentum_buffer"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One step for every run of the slice; `lr`: float64 [n], this step's rates."""
        self.steps += 1
        for j, stacked in enumerate(self.params):
            if stacked.grad is None:
                continue
            p, g = stacked[self.runs], stacked.grad[self.runs]
            if "sign" in self.state[j]:
                g = g * self.state[j]["sign"]
            shape = (self.n,) + (1,) * (p.dim() - 1)
            getattr(self, f"_{self.name}")(j, p, g, lr, shape)

    def _weight_decay(self, j: int, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.same(j, "weight_decay") is False:
            return g  # g + 0 * p, without the two kernels
        return g + self.h(j, "weight_decay") * p

    def _sgd(self, j: int, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, shape: tuple[int, ...]) -> None:
        g = self._weight_decay(j, p, g)
        step = lr.to(p.dtype).view(shape)
        if self.same(j, "momentum") is False:  # plain SGD for every run: torch keeps no buffer either
            p.sub_(step * g)
            return
        momentum = self.h(j, "momentum")
        buf = self.state[j]["momentum_buffer"]
        if self.steps == 1:
            buf.copy_(g)  # torch's first step: the buffer is the gradient, undampened
        else:
            # A run without momentum keeps no buffer in torch: its buffer here is its gradient.
            undamped = self._cache.get((j, "1-dampening", None))
            if undamped is None:
                dampening = torch.where(momentum == 0, 0.0, self.h(j, "dampening"))
                undamped = self._cache[(j, "1-dampening", None)] = 1 - dampening
            buf.mul_(momentum).add_(g * undamped)
        nesterov = self.same(j, "nesterov")
        if nesterov is False:
            direction = buf
        elif nesterov:
            direction = g + momentum * buf
        else:
            direction = torch.where(self.flags(j, "nesterov"), g + momentum * buf, buf)
        p.sub_(step * direction)

    def _adam(self, j: int, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, shape: tuple[int, ...]) -> None:
        s = self.state[j]
        if self.same(j, "weight_decay") is not False:  # (no decay: p * 1 and g + 0 * p change nothing)
            wd = self.h(j, "weight_decay")
            decoupled = self.same(j, "decoupled_weight_decay")
            shrink = (1 - lr.view(shape) * self.h(j, "weight_decay", torch.float64)).to(p.dtype)
            if decoupled:
                p.mul_(shrink)
            elif decoupled is False:
                g = g + wd * p
            else:
                flags = self.flags(j, "decoupled_weight_decay")
                p.mul_(torch.where(flags, shrink, 1.0))
                g = torch.where(flags, g, g + wd * p)
        beta2 = self.h(j, "beta2")
        s["exp_avg"].lerp_(g, self.one_minus(j, "beta1"))
        s["exp_avg_sq"].mul_(beta2).addcmul_(g, g * self.one_minus(j, "beta2"))
        # Bias corrections in float64, as torch computes them from Python floats.
        b1, b2 = self.h(j, "beta1", torch.float64), self.h(j, "beta2", torch.float64)
        step_size = (lr.view(shape) / (1 - b1**self.steps)).to(p.dtype)
        bc2_sqrt = ((1 - b2**self.steps) ** 0.5).to(p.dtype)
        second = s["exp_avg_sq"]
        if "max_exp_avg_sq" in s:
            torch.maximum(s["max_exp_avg_sq"], second, out=s["max_exp_avg_sq"])
            amsgrad = self.same(j, "amsgrad")
            second = s["max_exp_avg_sq"] if amsgrad else torch.where(self.flags(j, "amsgrad"), s["max_exp_avg_sq"], second)
        denom = (second.sqrt() / bc2_sqrt).add_(self.h(j, "eps"))
        p.sub_(step_size * (s["exp_avg"] / denom))

    def _rmsprop(self, j: int, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, shape: tuple[int, ...]) -> None:
        s = self.state[j]
        g = self._weight_decay(j, p, g)
        alpha = self.h(j, "alpha")
        s["square_avg"].mul_(alpha).addcmul_(g, g * self.one_minus(j, "alpha"))
        s["grad_avg"].lerp_(g, self.one_minus(j, "alpha"))
        centered = s["square_avg"] - s["grad_avg"] * s["grad_avg"]
        avg = torch.where(self.flags(j, "centered"), centered, s["square_avg"]).sqrt().add_(self.h(j, "eps"))
        momentum = self.h(j, "momentum")
        buf = s["momentum_buffer"]
        buf.mul_(momentum).add_(g / avg)
        p.sub_(lr.to(p.dtype).view(shape) * torch.where(momentum > 0, buf, g / avg))

    def _adagrad(self, j: int, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, shape: tuple[int, ...]) -> None:
        g = self._weight_decay(j, p, g)
        decay = self.h(j, "lr_decay", torch.float64)
        clr = (lr.view(shape) / (1 + (self.steps - 1) * decay)).to(p.dtype)
        total = self.state[j]["sum"]
        total.addcmul_(g, g)
        p.sub_(clr * (g / total.sqrt().add_(self.h(j, "eps"))))

    def torch_state(self, j: int, i: int) -> dict[str, torch.Tensor]:
        """Run i's state for parameter j in its torch optimizer's format (checkpoints)."""
        s = {k: v[i].clone() for k, v in self.state[j].items() if k != "sign"}
        h = self.hypers[j][i]
        step = torch.tensor(float(self.steps))
        if self.name == "adam":
            if not h["amsgrad"]:
                s.pop("max_exp_avg_sq", None)
            return {"step": step, **s}
        if self.name == "rmsprop":
            kept = {"step": step, "square_avg": s["square_avg"]}
            if h["momentum"] > 0:
                kept["momentum_buffer"] = s["momentum_buffer"]
            if h["centered"]:
                kept["grad_avg"] = s["grad_avg"]
            return kept
        if self.name == "adagrad":
            return {"step": step, "sum": s["sum"]}
        return {"momentum_buffer": s["momentum_buffer"]} if h["momentum"] != 0 else {}


def _scalar(value: Any, key: str) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.item())
    return float(value)


def hypers_for(optimizer: Optimizer) -> dict[int, dict[str, Any]]:
    """id(parameter) -> its hyperparameters, with betas split and Adam's decoupling explicit."""
    out = {}
    for pid, g in group_of(optimizer).items():
        h = dict(g)
        if "betas" in h:
            h["beta1"], h["beta2"] = h["betas"]
        if isinstance(optimizer, Adam):
            h["decoupled_weight_decay"] = isinstance(optimizer, AdamW) or bool(h.get("decoupled_weight_decay"))
        out[pid] = h
    return out
