"""Which loss fits which task, and the output width it needs: plain rules, no torch, so
validating a preset can ask them without importing the engine."""

from __future__ import annotations

ALLOWED_LOSSES: dict[str, tuple[str, ...]] = {
    "multiclass": ("cross_entropy",),
    "binary": ("cross_entropy", "bce_with_logits"),
    "regression": ("mse", "l1", "smooth_l1"),
}


def n_outputs(task: str, n_classes: int, loss: str) -> int:
    """Width of the model's last layer for this task and loss."""
    if task == "multiclass":
        return n_classes
    if task == "binary":
        return 1 if loss == "bce_with_logits" else 2
    if task == "regression":
        return 1
    raise ValueError(f"unknown task {task!r}")


def loss_task_error(loss: str, task: str, dataset: str | None = None) -> str | None:
    """Why `loss` cannot train a `task` model, or None when it can."""
    allowed = ALLOWED_LOSSES.get(task)
    if allowed is None:
        return f"unknown task {task!r}"
    if loss in allowed:
        return None
    where = f"the {task} dataset {dataset!r}" if dataset else f"a {task} task"
    return f"loss {loss!r} does not fit {where}; allowed: {', '.join(allowed)}"
