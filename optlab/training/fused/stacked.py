"""K same-shape MLPs as one stack: every run's parameters live in one [K, P] buffer (run k's
row holds its parameters one after another, in `model.parameters()` order), and their gradients
accumulate into one [K, P] buffer of the same layout. An optimizer family's update is then a
handful of element-wise kernels over a [n, P] slice of rows (`vector_optim.py`), instead of a
handful per parameter; each run's own module reads and writes its row through views.

Dropout draws each run's mask from that run's own generator, as the unfused run's forward
would (`dropout_mask`), so masks, and the run's random state after them, are the unfused ones."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

# Element-wise modules: they act on a [K, B, width] activation as on a [B, width] one.
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Identity)


def stack_error(model: nn.Module) -> str | None:
    """Why `model` cannot be stacked (anything but Flatten, Linear, element-wise activations and
    dropout after the first linear layer)."""
    if not isinstance(model, nn.Sequential):
        return f"model is a {type(model).__name__}, not a sequence of layers"
    linear = False
    for layer in model:
        if isinstance(layer, nn.Flatten) and linear:
            return "a Flatten after a Linear layer has no stacked form"
        if isinstance(layer, (nn.Linear, nn.Flatten, *ELEMENTWISE)):
            linear = linear or isinstance(layer, nn.Linear)
            continue
        if type(layer) is nn.Dropout:
            if not linear:  # it would act on the batch every run shares: one mask per run there
                return "a Dropout before the first Linear layer has no stacked form"
            continue
        return f"its {type(layer).__name__} layer has no stacked form"
    if not any(isinstance(layer, nn.Linear) for layer in model):
        return "it has no linear layer"
    return None


def dropout_mask(h: torch.Tensor, p: float, generators: list[torch.Generator]) -> torch.Tensor:
    """The K runs' dropout masks for a stacked activation `h` ([K, width, B]), as [K, width, B].
    Run k's is what torch's CPU dropout draws for its [B, width] activation
    (`noise = empty_like(input).bernoulli_(1 - p); noise.div_(1 - p)`), from run k's generator
    in its state: the same shape and dtype, so the same draws and the same advance of the state."""
    _, width, b = h.shape
    if p >= 1:  # torch multiplies by zero without drawing
        return torch.zeros((), dtype=h.dtype, device=h.device)
    # Each run's [B, width] draw is a contiguous row of one buffer (the same elements in the same
    # order as a tensor of its own); one division for all writes the stack's layout, so the
    # forward's and backward's multiplies by the mask run on contiguous memory (strided: 4x slower).
    noise = torch.empty(len(generators), b, width, dtype=h.dtype, device=h.device)
    for row, g in zip(noise, generators, strict=True):
        row.bernoulli_(1 - p, generator=g)
    return torch.div(noise.transpose(1, 2), 1 - p, out=torch.empty_like(h))


class StackedMLP:
    """The forward of K same-shape MLPs at once, batched matmuls over the stacked weights."""

    def __init__(self, models: list[nn.Module]) -> None:
        problem = stack_error(models[0])
        if problem:
            raise ValueError(problem)
        self.k = len(models)
        own = [list(m.parameters()) for m in models]
        self.shapes = [p.shape for p in own[0]]
        self.sizes = [p.numel() for p in own[0]]
        first = own[0][0]
        self.flat = torch.cat([torch.cat([p.detach().reshape(1, -1) for p in row], 1) for row in own])
        self.flat = self.flat.to(first.device, first.dtype)
        self.grad = torch.zeros_like(self.flat)
        # The stacked leaves the forward uses, in model.parameters() order: views of `flat`, each
        # with a `.grad` view of `grad` already set, so autograd adds into the flat buffer in place.
        self.params: list[torch.Tensor] = []
        for j, piece in enumerate(self._pieces(self.flat)):
            leaf = piece.detach().requires_grad_(True)
            leaf.grad = self._pieces(self.grad)[j]
            self.params.append(leaf)
            for k, row in enumerate(own):
                row[j].data = piece[k]  # the run's own parameter now reads and writes its slice
        # Each linear layer's gradient views (weight, bias), for a backward written out.
        grads = iter(self._pieces(self.grad))
        self.pieces_of_grad: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        for layer in cast(nn.Sequential, models[0]):
            if isinstance(layer, nn.Linear):
                self.pieces_of_grad.append((next(grads), next(grads) if layer.bias is not None else None))
        # Each layer: a stacked linear's (weight, bias), "flatten", or an activation or Dropout module.
        self.layers: list[tuple[torch.Tensor, torch.Tensor | None] | str | nn.Module] = []
        leaves = iter(self.params)
        for layer in cast(nn.Sequential, models[0]):
            if isinstance(layer, nn.Linear):
                self.layers.append((next(leaves), next(leaves) if layer.bias is not None else None))
            else:
                self.layers.append("flatten" if isinstance(layer, nn.Flatten) else layer)

    def _pieces(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of `flat` ([K, P]) shaped as each stacked parameter ([K, *shape])."""
        return [part.view(self.k, *shape) for part, shape in zip(flat.split(self.sizes, 1), self.shapes, strict=True)]

    def offsets(self) -> list[int]:
        """Where each parameter starts in a run's row."""
        out, at = [], 0
        for size in self.sizes:
            out.append(at)
            at += size
        return out

    @property
    def has_dropout(self) -> bool:
        return any(type(item) is nn.Dropout and item.p > 0 for item in self.layers)

    def forward(self, x: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """[B, ...] -> [K, B, out], a transposed view of what is computed: [K, out, B]. Features
        before the batch all the way (W @ h, no activation transposed): the gradients of every
        layer come back in the layout of its output, so element-wise backwards stay on
        contiguous memory, and `.transpose(1, 2)` of the result is the class-major [K, C, B] in
        which a softmax over 10 classes runs 3x faster on CPU than over a last dim of 10."""
        h: torch.Tensor = x
        shared = True  # h is still the batch every run shares ([B, ...], no K axis)
        for item in self.layers:
            if isinstance(item, str):
                h = h.flatten(1)  # only before the first linear layer (`stack_error`)
            elif type(item) is nn.Dropout:
                if generators is not None and item.p > 0:
                    h = h * dropout_mask(h, item.p, generators)
            elif type(item) is nn.ReLU and not shared and not torch.is_grad_enabled():
                # In place on the stack's own activation (validation, test): out of place, a
                # fresh [K, width, B] buffer each time cost 9x the kernel (2.3 MB for 16 digits
                # runs over the validation split: its pages faulted in anew).
                h = h.relu_()
            elif isinstance(item, nn.Module):
                h = item(h)
            else:
                weight, bias = item
                if shared:  # every run sees the same batch: broadcast it (no copy)
                    h = h.t().unsqueeze(0).expand(self.k, -1, -1)
                    shared = False
                h = torch.bmm(weight, h) if bias is None else torch.baddbmm(bias.unsqueeze(2), weight, h)
        return h.transpose(1, 2)

    def zero_grad(self) -> None:
        self.grad.zero_()

    def backward(self, loss: torch.Tensor, grad: torch.Tensor | None = None) -> None:
        """`loss.backward(grad)` into the flat gradient buffer. Autograd would warn (once, to the
        user's console) that a gradient that is a strided view of the flat buffer is not the dense
        layout it would have chosen; that layout is the point here, and its adds stay in place:
        the check is off for this thread while the backward runs, and back on after."""
        enforce = getattr(torch._C, "_set_grad_layout_enforcement_enabled", None)
        if enforce is None:  # an older torch without the switch: the warning, once
            loss.backward(grad)
            return
        was = torch._C._is_grad_layout_enforcement_enabled()
        enforce(False)
        try:
            loss.backward(grad)
        finally:
            enforce(was)

    def detach(self, model: nn.Module) -> None:
        """A run that left the group: its parameters get storage of their own again."""
        for p in model.parameters():
            p.data = p.data.clone()
