"""One optimizer step, as the optimizer's capabilities need it: plain (with the fp16 loss
scaler and gradient clipping), or through a closure the optimizer may evaluate several times
(LBFGS), with `backward(create_graph=True)` for Hessian-based optimizers. Counts the
forward+backward passes (`grad_evals`), so runs compare on the work they did, not on steps."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from torch.optim import Optimizer

from optlab.spec import ResolvedRun


class Stepper:
    def __init__(
        self,
        spec: ResolvedRun,
        model: nn.Module,
        forward: Callable[[torch.Tensor], torch.Tensor],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: Optimizer,
        scaler: torch.amp.GradScaler,
        autocast: Callable[[], contextlib.AbstractContextManager],
        *,
        needs_closure: bool,
        create_graph: bool,
    ) -> None:
        self.spec = spec
        self.model = model
        self.forward = forward
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scaler = scaler
        self.autocast = autocast
        self.needs_closure = needs_closure
        self.create_graph = create_graph
        self.l1_params = [p for p in model.parameters() if p.dim() > 1] if spec.l1 else []
        self.grad_evals = 0  # forward+backward passes so far

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the batch; the batch's loss and output (before the step)."""
        return self._closure_step(xb, yb) if self.needs_closure else self._plain_step(xb, yb)

    def _loss(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            out = self.forward(xb)
            loss = self.loss_fn(out.float(), yb)
            if self.l1_params:
                loss = loss + self.spec.l1 * sum(p.abs().sum() for p in self.l1_params)
        return loss, out

    def _clip(self) -> None:
        spec = self.spec
        if spec.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.clip_grad_norm)
        elif spec.clip_grad_value:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), spec.clip_grad_value)

    def _plain_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, out = self._loss(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(create_graph=self.create_graph)
        if self.spec.clip_grad_norm or self.spec.clip_grad_value:
            self.scaler.unscale_(self.optimizer)
            self._clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.grad_evals += 1
        return loss, out

    def _closure_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`optimizer.step(closure)`: the optimizer evaluates the loss as often as it needs.
        The step's loss (and accuracy) is its first evaluation, at the weights it started
        from, as for every other optimizer."""
        first: list[tuple[torch.Tensor, torch.Tensor]] = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss, out = self._loss(xb, yb)
            loss.backward(create_graph=self.create_graph)
            self._clip()
            self.grad_evals += 1
            if not first:
                first.append((loss.detach(), out.detach()))
            return loss

        self.optimizer.step(closure)  # type: ignore[arg-type]  # torch types a closure as returning float; LBFGS and kin take the loss tensor
        return first[0]
