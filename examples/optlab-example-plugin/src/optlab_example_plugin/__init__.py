"""An example optlab plugin: one optimizer, one model, one dataset.

optlab calls `register(registry)`; nothing here runs before that, and torch is imported only
when a run actually builds the optimizer or the model (so `optlab plugins` and shell completion
stay fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch
    from torch import nn

    from optlab.registry import Registrar


def signsgd(params: Iterable[torch.Tensor], lr: float = 0.01, momentum: float = 0.0) -> torch.optim.Optimizer:
    """signSGD with momentum (Bernstein et al. 2018): step by the sign of the momentum buffer."""
    import torch

    class SignSGD(torch.optim.Optimizer):
        def __init__(self) -> None:
            if not 0.0 <= momentum < 1.0:
                raise ValueError(f"momentum must be in [0, 1), got {momentum}")
            super().__init__(params, {"lr": lr, "momentum": momentum})

        @torch.no_grad()
        def step(self, closure: Any = None) -> None:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                    p.add_(buf.sign(), alpha=-group["lr"])

    return SignSGD()


def resmlp(input_shape: tuple[int, ...], n_outputs: int, width: int = 64, blocks: int = 2) -> nn.Module:
    """A small residual MLP: a projection, `blocks` residual blocks, a linear head."""
    import math

    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x)

    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), width),
        *(Block() for _ in range(blocks)),
        nn.Linear(width, n_outputs),
    )


def two_moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """scikit-learn's two interleaving half circles: a binary task a linear model cannot solve."""
    import numpy as np
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return {
        "x_train": x.astype(np.float32),
        "y_train": y.astype(np.int64),
        "task": "binary",
        "class_names": ["upper", "lower"],
    }


def register(registry: Registrar) -> None:
    registry.optimizer("signsgd", signsgd)
    registry.model("resmlp", resmlp)
    registry.dataset("two-moons", two_moons)
