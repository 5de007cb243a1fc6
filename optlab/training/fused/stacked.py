"""K MLPs of one shape as one stacked model: each weight becomes a [K, ...] leaf tensor and
every run's own `nn.Linear` parameters become views into it, so evaluation, early stopping and
checkpoints read each run's weights through its own module, exactly as unfused."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

# Element-wise modules: they act on a [K, B, width] activation as on a [B, width] one.
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Identity)


def stack_error(model: nn.Module) -> str | None:
    """Why `model` cannot be stacked (anything but Flatten, Linear and element-wise activations)."""
    if not isinstance(model, nn.Sequential):
        return f"model is a {type(model).__name__}, not a sequence of layers"
    for layer in model:
        if isinstance(layer, (nn.Linear, nn.Flatten, *ELEMENTWISE)):
            continue
        return f"its {type(layer).__name__} layer has no stacked form"
    if not any(isinstance(layer, nn.Linear) for layer in model):
        return "it has no linear layer"
    return None


class StackedMLP:
    """The forward of K same-shape MLPs at once: one [B, K*out] GEMM for the first layer (every
    run sees the same batch), batched matmuls for the rest."""

    def __init__(self, models: list[nn.Module]) -> None:
        problem = stack_error(models[0])
        if problem:
            raise ValueError(problem)
        self.k = len(models)
        # Each layer: a stacked linear's (weight, bias), "flatten", or an activation module.
        self.layers: list[tuple[torch.Tensor, torch.Tensor | None] | str | nn.Module] = []
        self.params: list[torch.Tensor] = []  # the stacked leaves, in model.parameters() order
        sequences = [cast(nn.Sequential, m) for m in models]
        for i, layer in enumerate(sequences[0]):
            if isinstance(layer, nn.Linear):
                weight = self._stack([cast(nn.Linear, m[i]).weight for m in sequences])
                bias = self._stack([cast(nn.Linear, m[i]).bias for m in sequences]) if layer.bias is not None else None
                self.layers.append((weight, bias))
            elif isinstance(layer, nn.Flatten):
                self.layers.append("flatten")
            else:
                self.layers.append(layer)

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([t.detach() for t in tensors]).requires_grad_(True)
        for k, t in enumerate(tensors):
            t.data = stacked.data[k]  # the run's own parameter now reads and writes its slice
        self.params.append(stacked)
        return stacked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, ...] -> [K, B, out]."""
        h: torch.Tensor = x
        shared = True  # h is still the batch every run shares ([B, ...], no K axis)
        for item in self.layers:
            if isinstance(item, str):
                h = h.flatten(1) if shared else h.flatten(2)
            elif isinstance(item, nn.Module):
                h = item(h)
            else:
                weight, bias = item
                k, out, width = weight.shape
                if shared:
                    flat = weight.reshape(k * out, width).t()
                    h = h @ flat if bias is None else torch.addmm(bias.reshape(k * out), h, flat)
                    h = h.view(-1, k, out).transpose(0, 1)
                    shared = False
                elif bias is None:
                    h = torch.bmm(h, weight.transpose(1, 2))
                else:
                    h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        return h

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def detach(self, model: nn.Module) -> None:
        """A run that left the group: its parameters get storage of their own again."""
        for p in model.parameters():
            p.data = p.data.clone()
