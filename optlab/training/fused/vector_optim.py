"""Vectorized optimizer updates over a stack's flat [K, P] buffer, every hyperparameter a
per-run tensor.

Each update follows torch.optim's own algorithm for its family (same formulas, same bias
corrections, the same order of operations where it matters) for runs [start, stop) of the
stack: SGD (momentum, dampening, nesterov, weight decay), Adam and AdamW (amsgrad, decoupled
weight decay), RMSprop (centered, momentum) and Adagrad (lr decay). The family's rows of the
flat buffer are one [n, P] tensor, so a step is a handful of kernels whatever the number of
parameters. A hyperparameter is [n, 1] where each run uses one value for all its parameters,
and [n, P] (each parameter's segment filled with its value) where a run's param groups differ,
e.g. no weight decay on biases. Differences from a run's own torch optimizer stay in the last
bits of float32 (tests/unit/test_fused_optim.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

from optlab import registry

FAMILIES: dict[type, str] = {SGD: "sgd", Adam: "adam", AdamW: "adam", RMSprop: "rmsprop", Adagrad: "adagrad"}


PLUGIN = "plugin:"  # a family of a plugin's own: "plugin:<registered name>" (`plugin_update.py`)


def family(optimizer: Optimizer, name: str | None = None) -> str | None:
    """The vectorized family that reproduces `optimizer`, or None (a subclass may change the
    step): torch's own classes by type, else the `vectorized` update the optimizer registered
    as `name` gave (a plugin's)."""
    found = FAMILIES.get(type(optimizer))
    if found is None and name is not None:
        entry = registry.registry().find("optimizer", name)
        if entry is not None and callable(entry.extra.get("vectorized")):
            return PLUGIN + name
    return found


def group_of(optimizer: Optimizer) -> dict[int, dict[str, Any]]:
    """id(parameter) -> its param group's hyperparameters."""
    return {id(p): g for g in optimizer.param_groups for p in g["params"]}


class VectorUpdate:
    """One family's update for rows `runs` of the flat parameters `flat` ([K, P]) given the
    gradients `grad` (same layout). `shapes`: each parameter's shape, in row order;
    `hypers[j][i]`: the torch param group (hyperparameters) of parameter j in the slice's run i."""

    def __init__(self, name: str, flat: torch.Tensor, grad: torch.Tensor, runs: slice,
                 hypers: list[list[dict[str, Any]]], shapes: list[torch.Size]) -> None:
        self.name = name
        self.runs = runs
        self.p, self.g = flat[runs], grad[runs]
        self.n, self.width = self.p.shape
        self.hypers = hypers
        self.shapes = shapes
        self.sizes = [s.numel() for s in shapes]
        self.steps = 0
        self._rates: list[list[float]] = []
        self._lr = torch.zeros(0)
        self.state: dict[str, torch.Tensor] = {}
        self._cache: dict[tuple[str, torch.dtype | None], torch.Tensor] = {}
        self._uniform: dict[str, bool | None] = {}
        if self.same("maximize") is not False:
            self.state["sign"] = self._tensor([[-1.0 if h.get("maximize") else 1.0 for h in row] for row in hypers])
        self._init_state()

    # ------------------------------------------------------------------ hyperparameters

    def _tensor(self, values: list[list[float]], dtype: torch.dtype | None = None) -> torch.Tensor:
        """values[j][i] (parameter j, run i) as [n, 1] when every run's parameters agree, else [n, P]."""
        dtype, device = dtype or self.p.dtype, self.p.device
        per_run = [[values[j][i] for j in range(len(values))] for i in range(self.n)]
        if all(len(set(row)) == 1 for row in per_run):
            return torch.tensor([row[0] for row in per_run], dtype=dtype, device=device).view(self.n, 1)
        segments = torch.tensor(per_run, dtype=dtype, device=device)  # [n, parameters]
        return segments.repeat_interleave(torch.tensor(self.sizes, device=device), dim=1)

    def h(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Hyperparameter `key`, one value per run (and parameter), shaped to broadcast over [n, P]."""
        cached = self._cache.get((key, dtype))
        if cached is None:
            values = [[float(_scalar(h[key], key)) for h in row] for row in self.hypers]
            cached = self._cache[(key, dtype)] = self._tensor(values, dtype)
        return cached

    def same(self, key: str) -> bool | None:
        """Whether hyperparameter `key` is set (nonzero, or true) for every run and parameter of
        the slice (True), for none (False), or for some (None). Where all agree, an update skips
        the `torch.where` between the two branches: fewer kernels a step, the same numbers."""
        known = self._uniform.get(key, ...)
        if known is ...:
            values = {bool(_scalar(h.get(key, False), key)) for row in self.hypers for h in row}
            known = self._uniform[key] = values.pop() if len(values) == 1 else None
        return known

    def one_minus(self, key: str) -> torch.Tensor:
        """1 - hyperparameter, computed in float64 as torch does from Python floats (1 - 0.999
        in float32 loses digits)."""
        cached = self._cache.get(("1-" + key, None))
        if cached is None:
            cached = self._cache[("1-" + key, None)] = (1 - self.h(key, torch.float64)).to(self.p.dtype)
        return cached

    def flags(self, key: str) -> torch.Tensor:
        return self.h(key, torch.bool)

    def _init_state(self) -> None:
        s, p = self.state, self.p
        if self.name == "adam":
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            if self.same("amsgrad") is not False:
                s["max_exp_avg_sq"] = torch.zeros_like(p)
        elif self.name == "rmsprop":
            s["square_avg"] = torch.zeros_like(p)
            if self.same("momentum") is not False:
                s["momentum_buffer"] = torch.zeros_like(p)
            if self.same("centered") is not False:
                s["grad_avg"] = torch.zeros_like(p)
        elif self.name == "adagrad":
            s["sum"] = (torch.ones_like(p) * self.h("initial_accumulator_value")).contiguous()
        elif self.name == "sgd" and self.same("momentum") is not False:
            s["momentum_buffer"] = torch.zeros_like(p)

    # ------------------------------------------------------------------ the step

    def carry(self, source: VectorUpdate, old: int, new: int) -> None:
        """Run `old` of `source`'s slice goes on as run `new` of this one (its group re-formed
        without a run that ended): its optimizer state and the step count."""
        self.steps = source.steps
        for key, tensor in self.state.items():
            if key != "sign" and key in source.state:
                tensor[new].copy_(source.state[key][old])

    def interval(self, rates: list[list[float]]) -> None:
        """The next interval's rates: `rates[i][r]`, run r's (of the slice) at the interval's
        step i. One [steps, n, 1] float64 tensor, made again only when the rates change."""
        if rates != self._rates:
            self._rates = rates
            self._lr = torch.tensor(rates, dtype=torch.float64, device=self.p.device).unsqueeze(-1)

    @torch.no_grad()
    def step(self, i: int) -> None:
        """Step i of the interval for every run of the slice (the gradients are in `grad`)."""
        self.steps += 1
        g = self.g * self.state["sign"] if "sign" in self.state else self.g
        getattr(self, f"_{self.name}")(self.p, g, self._lr[i])

    def _weight_decay(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.same("weight_decay") is False:
            return g  # g + 0 * p, without the two kernels
        return g + self.h("weight_decay") * p

    def _sgd(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor) -> None:
        g = self._weight_decay(p, g)
        step = lr.to(p.dtype)
        if "momentum_buffer" not in self.state:  # plain SGD for every run: torch keeps no buffer either
            p.sub_(step * g)
            return
        momentum = self.h("momentum")
        buf = self.state["momentum_buffer"]
        if self.steps == 1:
            buf.copy_(g)  # torch's first step: the buffer is the gradient, undampened
        else:
            # A run without momentum keeps no buffer in torch: its buffer here is its gradient.
            undamped = self._cache.get(("1-dampening", None))
            if undamped is None:
                dampening = torch.where(momentum == 0, 0.0, self.h("dampening"))
                undamped = self._cache[("1-dampening", None)] = 1 - dampening
            buf.mul_(momentum).add_(g * undamped)
        nesterov = self.same("nesterov")
        if nesterov is False:
            direction = buf
        elif nesterov:
            direction = g + momentum * buf
        else:
            direction = torch.where(self.flags("nesterov"), g + momentum * buf, buf)
        p.sub_(step * direction)

    def _adam(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor) -> None:
        s = self.state
        if self.same("weight_decay") is not False:  # (no decay: p * 1 and g + 0 * p change nothing)
            wd = self.h("weight_decay")
            decoupled = self.same("decoupled_weight_decay")
            shrink = (1 - lr * self.h("weight_decay", torch.float64)).to(p.dtype)
            if decoupled:
                p.mul_(shrink)
            elif decoupled is False:
                g = g + wd * p
            else:
                flags = self.flags("decoupled_weight_decay")
                p.mul_(torch.where(flags, shrink, 1.0))
                g = torch.where(flags, g, g + wd * p)
        beta2 = self.h("beta2")
        s["exp_avg"].lerp_(g, self.one_minus("beta1"))
        s["exp_avg_sq"].mul_(beta2).addcmul_(g, g * self.one_minus("beta2"))
        # Bias corrections in float64, as torch computes them from Python floats.
        b1, b2 = self.h("beta1", torch.float64), self.h("beta2", torch.float64)
        step_size = (lr / (1 - b1**self.steps)).to(p.dtype)
        bc2_sqrt = ((1 - b2**self.steps) ** 0.5).to(p.dtype)
        second = s["exp_avg_sq"]
        if "max_exp_avg_sq" in s:
            torch.maximum(s["max_exp_avg_sq"], second, out=s["max_exp_avg_sq"])
            amsgrad = self.same("amsgrad")
            second = s["max_exp_avg_sq"] if amsgrad else torch.where(self.flags("amsgrad"), s["max_exp_avg_sq"], second)
        denom = (second.sqrt() / bc2_sqrt).add_(self.h("eps"))
        p.sub_(step_size * (s["exp_avg"] / denom))

    def _rmsprop(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor) -> None:
        s = self.state
        g = self._weight_decay(p, g)
        alpha = self.h("alpha")
        s["square_avg"].mul_(alpha).addcmul_(g, g * self.one_minus("alpha"))
        avg = s["square_avg"]
        if "grad_avg" in s:
            s["grad_avg"].lerp_(g, self.one_minus("alpha"))
            centered = avg - s["grad_avg"] * s["grad_avg"]
            avg = centered if self.same("centered") else torch.where(self.flags("centered"), centered, avg)
        avg = avg.sqrt().add_(self.h("eps"))
        step = lr.to(p.dtype)
        if "momentum_buffer" not in s:
            p.sub_(step * (g / avg))
            return
        buf = s["momentum_buffer"]
        buf.mul_(self.h("momentum")).add_(g / avg)
        direction = buf if self.same("momentum") else torch.where(self.h("momentum") > 0, buf, g / avg)
        p.sub_(step * direction)

    def _adagrad(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor) -> None:
        g = self._weight_decay(p, g)
        decay = self.h("lr_decay", torch.float64)
        clr = (lr / (1 + (self.steps - 1) * decay)).to(p.dtype)
        total = self.state["sum"]
        total.addcmul_(g, g)
        p.sub_(clr * (g / total.sqrt().add_(self.h("eps"))))

    # ------------------------------------------------------------------ checkpoints

    def torch_state(self, j: int, i: int) -> dict[str, torch.Tensor]:
        """Run i's state for parameter j in its torch optimizer's format (checkpoints)."""
        start = sum(self.sizes[:j])
        s = {k: v[i, start : start + self.sizes[j]].reshape(self.shapes[j]).clone()
             for k, v in self.state.items() if k != "sign"}
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
