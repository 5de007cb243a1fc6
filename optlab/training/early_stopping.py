"""Track the best epoch, decide early stopping, and keep the best weights when asked."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from optlab.spec import EarlyStopping
from optlab.training.evaluation import EvalResult


class BestTracker:
    def __init__(self, cfg: EarlyStopping | None, task: str) -> None:
        self.cfg = cfg
        default = "val_loss" if task == "regression" else "val_accuracy"
        self.metric = cfg.metric if cfg else default
        self.maximize = self.metric == "val_accuracy"
        self.min_delta = cfg.min_delta if cfg else 0.0
        self.patience = cfg.patience if cfg else 0
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val: EvalResult | None, model: nn.Module) -> bool:
        if val is None:
            return False
        value = val.accuracy if self.maximize else val.loss
        if value is None:
            return False
        if self.best_value is None:
            better = True
        elif self.maximize:
            better = value > self.best_value + self.min_delta
        else:
            better = value < self.best_value - self.min_delta
        if better:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            if self.cfg and self.cfg.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return better

    def should_stop(self) -> bool:
        return self.cfg is not None and self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.bad_epochs, self.best_weights = state["bad_epochs"], state["best_weights"]
