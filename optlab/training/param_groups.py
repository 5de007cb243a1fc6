"""Parameter groups, and several optimizers behind one object.

Two things need a model's parameters split before an optimizer sees them:

- `weight_decay_on = "matrices"`: parameters with fewer than two dimensions (biases, the
  gains and shifts of normalisation layers) go to a group with `weight_decay = 0`, as nanoGPT
  does; everything else keeps the configured decay.
- matrix-only optimizers (Muon): they take the 2-D weight matrices of hidden layers; the rest
  (biases, norms, embeddings, conv kernels, and the output layer unless `aux_head = false`)
  is trained by an auxiliary AdamW. `CompositeOptimizer` puts both behind one `Optimizer`, so
  the trainer, the LR schedule, GradScaler and checkpoints handle a run with two optimizers as
  they handle one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim import Optimizer

if TYPE_CHECKING:
    from torch.optim.optimizer import StateDict

# Modules whose 2-D weights are lookup tables, not linear maps: orthogonalising their updates
# (what Muon does) has no meaning for them, so they stay with the auxiliary optimizer.
EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


@dataclass(frozen=True)
class NamedParam:
    name: str
    param: torch.Tensor
    embedding: bool = False


def named_params(source: nn.Module | Iterable[torch.Tensor]) -> list[NamedParam]:
    """The trainable parameters of a model (with which ones are embeddings), or of a plain
    iterable of tensors (named by position), in registration order."""
    if isinstance(source, nn.Module):
        embedding_ids = {id(p) for m in source.modules() if isinstance(m, EMBEDDINGS) for p in m.parameters()}
        return [
            NamedParam(name, p, id(p) in embedding_ids)
            for name, p in source.named_parameters()
            if p.requires_grad
        ]
    return [NamedParam(str(i), p) for i, p in enumerate(source)]


def decay_groups(params: list[NamedParam], weight_decay_on: str, weight_decay: float | None = None) -> list[dict[str, Any]]:
    """One group for everything (`all`), or the matrices with the configured decay followed by
    the rest without it (`matrices`). The decayed group comes first: the reported lr is group
    0's. `weight_decay` sets the decayed group's value where the caller owns it (the auxiliary
    optimizer); None leaves the optimizer's own (a preset's `weight_decay`, or its default)."""
    if weight_decay_on == "all":
        group: dict[str, Any] = {"params": [p.param for p in params]}
        if weight_decay is not None:
            group["weight_decay"] = weight_decay
        return [group]
    decayed = [p.param for p in params if p.param.dim() >= 2]
    undecayed = [p.param for p in params if p.param.dim() < 2]
    groups: list[dict[str, Any]] = []
    if decayed:
        groups.append({"params": decayed} if weight_decay is None else {"params": decayed, "weight_decay": weight_decay})
    if undecayed:
        groups.append({"params": undecayed, "weight_decay": 0.0})
    return groups


def matrix_split(params: list[NamedParam], head_on_aux: bool) -> tuple[list[NamedParam], list[NamedParam]]:
    """(the hidden layers' 2-D weight matrices, everything else). The output layer is the last
    2-D parameter that is not an embedding (the head of every built-in model, and of the usual
    `nn.Sequential`); conv kernels are 4-D and stay with the rest (not flattened)."""
    linear = [p for p in params if p.param.dim() == 2 and not p.embedding]
    head = linear[-1] if linear and head_on_aux else None
    matrices = [p for p in linear if p is not head]
    chosen = {id(p.param) for p in matrices}
    return matrices, [p for p in params if id(p.param) not in chosen]


class CompositeOptimizer(Optimizer):
    """Several optimizers, each over its own parameters, behind one `Optimizer`.

    `param_groups` is every sub-optimizer's groups in order (the same dicts, so an LR
    scheduler or warm-up that sets `group["lr"]` steers each sub-optimizer, every group from
    its own `initial_lr`); `step`, `zero_grad`, `train`/`eval` and the state dicts go to each.

    `Optimizer.__init__` is deliberately not called: it would take ownership of the groups and
    keep a state of its own, while here each sub-optimizer keeps its own (torch's schedulers
    and GradScaler only need `isinstance(..., Optimizer)`, `param_groups` and `step`).
    """

    def __init__(self, optimizers: list[Optimizer], names: list[str]) -> None:
        if not optimizers or len(optimizers) != len(names):
            raise ValueError("a composite optimizer needs one name per sub-optimizer")
        self.optimizers = list(optimizers)
        self.names = list(names)
        self.defaults = dict(optimizers[0].defaults)
        self._step_supports_amp_scaling = False

    # Read-only views of the sub-optimizers' own groups and states, where torch has attributes.
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [group for opt in self.optimizers for group in opt.param_groups]

    @property
    def state(self) -> dict[torch.Tensor, Any]:  # type: ignore[override]
        return {p: s for opt in self.optimizers for p, s in opt.state.items()}

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={type(opt).__name__}" for name, opt in zip(self.names, self.optimizers, strict=True))
        return f"CompositeOptimizer({parts})"

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of every sub-optimizer; a closure is evaluated once, for all of them."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def train(self) -> None:
        for opt in self.optimizers:
            train = getattr(opt, "train", None)  # schedule-free ones have it; torch's do not
            if callable(train):
                train()

    def eval(self) -> None:
        for opt in self.optimizers:
            evaluate = getattr(opt, "eval", None)
            if callable(evaluate):
                evaluate()

    def state_dict(self) -> StateDict:
        return {"composite": list(self.names), "optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: StateDict) -> None:
        saved = state_dict.get("composite") if isinstance(state_dict, dict) else None
        if saved != self.names:
            raise ValueError(f"optimizer state is for the optimizers {saved}, not {self.names}")
        for opt, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            opt.load_state_dict(state)
