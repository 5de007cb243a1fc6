"""The preset's tuning fields: `[tune]` (budget, sampler, pruner, objective, final seeds, seed)
and each run's `search` space. Pure data, validated with the preset (no torch, no Optuna), so
`optlab presets validate` checks them too; whether the optimizer takes a searched parameter is
checked by `optlab.tuning.space` against its signature, before anything is written.

A parameter's space is a range, `{ low, high, log }` (log-uniform needs low > 0), or a list of
values to choose from. `one_minus = true` draws 1 - value log-uniformly (momentum, Adam's
beta1: 0.9 and 0.99 are as far apart as 0.99 and 0.999), so it needs high < 1.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from optlab.spec import Strict, one_of

SAMPLERS = ("qmc", "tpe", "random", "grid")
PRUNERS = ("off", "asha", "median")
OBJECTIVES = ("val_accuracy", "val_loss")
DEFAULT_BUDGET = 12
DEFAULT_FINAL_SEEDS = 3
# Searched names that are not optimizer keywords: Adam-style betas are tuned one by one.
BETA_NAMES = {"beta1": 0, "beta2": 1}


class SearchRange(Strict):
    """One parameter's range."""

    low: float = Field(..., description="Smallest value")
    high: float = Field(..., description="Largest value")
    log: bool = Field(False, description="Draw log-uniformly (needs low > 0)")
    one_minus: bool = Field(False, description="Draw 1 - value log-uniformly (momentum, beta1; needs high < 1)")

    @model_validator(mode="after")
    def _bounds(self) -> SearchRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.one_minus:
            raise ValueError("log and one_minus are two scales: choose one")
        if self.log and self.low <= 0:
            raise ValueError(f"log = true needs low > 0 (got low = {self.low:g})")
        if self.one_minus and not (self.low >= 0 and self.high < 1):
            raise ValueError(f"one_minus = true needs 0 <= low and high < 1 (got {self.low:g}..{self.high:g})")
        return self


SearchValue = SearchRange | list[float | int | bool | str]


def check_space(space: dict[str, Any]) -> dict[str, SearchValue]:
    """A `search` table: at least one parameter, each a range table or a non-empty list of
    distinct values. Checked by hand, not as a pydantic union: a union reports every branch's
    complaint, and the user needs the one that applies."""
    if not space:
        raise ValueError("an empty search space: give at least one parameter, e.g. lr = { low = 1e-4, high = 1e-1, log = true }")
    out: dict[str, SearchValue] = {}
    for name, value in space.items():
        if isinstance(value, list):
            if not value:
                raise ValueError(f"{name}: an empty list of values")
            if len({repr(v) for v in value}) != len(value):
                raise ValueError(f"{name}: values must be distinct, got {value}")
            out[name] = value
        elif isinstance(value, dict):
            try:
                out[name] = SearchRange.model_validate(value)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"{name}{'.' + field if field else ''}: {err['msg'].removeprefix('Value error, ')}") from None
        else:
            raise ValueError(f"{name}: expected a range {{ low = ..., high = ..., log = true }} or a list of values, got {value!r}")
    return out


class TuneConfig(Strict):
    """`[tune]`: how `optlab tune` searches; command-line options override each field."""

    budget: int = Field(DEFAULT_BUDGET, ge=1, description="Trials per candidate (the same for every run)")
    sampler: str = Field("qmc", description="Sampler: " + ", ".join(SAMPLERS))
    pruner: str = Field("off", description="Pruner: " + ", ".join(PRUNERS))
    objective: str = Field("val_accuracy", description="Selection metric (validation only): " + ", ".join(OBJECTIVES))
    final_seeds: int = Field(DEFAULT_FINAL_SEEDS, ge=1, description="Seeds each candidate's best trial is retrained on")
    seed: int = Field(0, ge=0, description="Seed of the samplers (the same for every candidate)")
    parallel: int = Field(
        4, ge=1, description="Trials of each candidate trained side by side per wave (later waves see earlier results)"
    )

    _check_sampler = field_validator("sampler")(lambda v: one_of(v, SAMPLERS, "sampler"))
    _check_pruner = field_validator("pruner")(lambda v: one_of(v, PRUNERS, "pruner"))
    _check_objective = field_validator("objective")(lambda v: one_of(v, OBJECTIVES, "objective"))
