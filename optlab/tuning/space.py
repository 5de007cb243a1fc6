"""A candidate's search space: the run's own `search` table, else its optimizer entry's default
(`optlab.builtins.SEARCH_SPACES`, or a plugin's `search=`), else the learning rate alone.

Parameters are held in one canonical form (`Param`) and reach Optuna as distributions under
their recorded names: a `one_minus` parameter is recorded as `one_minus_NAME` (the value Optuna
drew, 1 - NAME), as AlgoPerf names its `one_minus_beta1`, so the study says what was sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from optlab import registry
from optlab.errors import PresetError
from optlab.preset.search import BETA_NAMES, SearchRange
from optlab.spec import ResolvedRun

LR_ONLY_DECADES = 1.5  # an optimizer that declares no space: its lr over this many decades either side
ADAM_BETAS = (0.9, 0.999)  # torch's default, for a beta tuned alone


@dataclass(frozen=True)
class Param:
    name: str  # the optimizer keyword (or beta1 / beta2)
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    one_minus: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def key(self) -> str:
        """The name Optuna records."""
        return f"one_minus_{self.name}" if self.one_minus else self.name

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        if self.choices is not None:
            return CategoricalDistribution(list(self.choices))
        if self.one_minus:
            return FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)
        return FloatDistribution(self.low, self.high, log=self.log)

    def from_unit(self, u: float) -> Any:
        """The recorded value at `u` in [0, 1) of the parameter's scale (a quasi-random coordinate)."""
        if self.choices is not None:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        lo, hi = (1.0 - self.high, 1.0 - self.low) if self.one_minus else (self.low, self.high)
        if self.one_minus or self.log:
            value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            value = lo + u * (hi - lo)
        return min(max(value, lo), hi)  # rounding must not step outside the distribution

    def natural(self, recorded: Any) -> Any:
        """The optimizer's value for a recorded one."""
        return 1.0 - recorded if self.one_minus else recorded

    def at_edge(self, recorded: Any, tolerance: float = 0.05) -> str | None:
        """"low" or "high" when a range's value lies within `tolerance` of the span (on its
        scale) from a bound; None otherwise (and for lists of values)."""
        if self.choices is not None:
            return None
        u = self._unit(recorded)
        if u <= tolerance:
            return "high" if self.one_minus else "low"  # 1 - x near its low: x near its high
        if u >= 1 - tolerance:
            return "low" if self.one_minus else "high"
        return None

    def _unit(self, recorded: float) -> float:
        lo, hi = (1.0 - self.high, 1.0 - self.low) if self.one_minus else (self.low, self.high)
        if self.one_minus or self.log:
            return (math.log(recorded) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (recorded - lo) / (hi - lo)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {list(self.choices)}"
        scale = "1-x log" if self.one_minus else "log" if self.log else "linear"
        return f"{self.name} {self.low:.3g}..{self.high:.3g} ({scale})"


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    origin: str  # "preset", "optimizer" or "lr only"
    note: str = ""

    def distributions(self) -> dict[str, Any]:
        return {p.key: p.distribution() for p in self.params}


def _param(name: str, value: Any, lr: float) -> Param:
    if isinstance(value, list | tuple):
        return Param(name, choices=tuple(value))
    if isinstance(value, dict) and "around" in value:
        decades = float(value["around"])
        return Param(name, lr / 10**decades, lr * 10**decades, log=True)
    r = value if isinstance(value, SearchRange) else SearchRange.model_validate(value)
    return Param(name, r.low, r.high, log=r.log, one_minus=r.one_minus)


def _ordered(params: Sequence[Param]) -> tuple[Param, ...]:
    # lr first, then by name: the quasi-random dimensions of shared parameters line up.
    return tuple(sorted(params, key=lambda p: (p.name != "lr", p.name)))


def space_for(spec: ResolvedRun, search: dict[str, Any] | None, origin: str) -> Space:
    """`spec`'s space, checked against its optimizer: every name one it takes (beta1 and beta2
    where it takes betas), a value list of the right kind. Raises PresetError naming
    `origin`, the run and the field."""
    name = spec.optimizer.name
    entry = registry.registry().get("optimizer", name)
    where = f"{origin}: runs ({spec.group or spec.name}): search"
    if search is not None:
        source, note, table = "preset", "", dict(search)
    elif isinstance(entry.extra.get("search"), dict):
        source, note, table = "optimizer", "", dict(cast("dict[str, object]", entry.extra["search"]))
    else:
        source, table = "lr only", {"lr": {"around": LR_ONLY_DECADES}}
        note = f"optimizer {name!r} declares no search space: tuning its lr only"
    takes, any_kwarg = registry.signature_params(entry.factory())
    if entry.extra.get("ignores_kwargs"):
        any_kwarg = False  # its **kwargs swallow typos: only named parameters count
    params = []
    for key, value in table.items():
        if key in BETA_NAMES:
            if "betas" not in takes and not any_kwarg:
                raise PresetError(f"{where}.{key}: optimizer {name!r} takes no betas; it takes {', '.join(takes[1:])}")
        elif key != "lr" and key not in takes and not any_kwarg:
            raise PresetError(f"{where}.{key}: optimizer {name!r} takes no {key!r}; it takes {', '.join(takes[1:])}")
        try:
            params.append(_param(key, value, spec.optimizer.lr))
        except ValueError as exc:
            raise PresetError(f"{where}.{key}: {exc}") from None
        if key == "lr" and params[-1].choices is not None and not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in params[-1].choices
        ):
            raise PresetError(f"{where}.lr: values must be positive numbers, got {list(params[-1].choices)}")
    return Space(_ordered(params), source, note)


def trial_spec(spec: ResolvedRun, space: Space, params: dict[str, Any], name: str, group: str,
               seed: int | None = None) -> ResolvedRun:
    """The candidate's run with the drawn values (recorded names, as Optuna gives them). A
    trial (no `seed`) never evaluates the test split; a final seed run (`seed`) does."""
    optimizer = spec.optimizer.model_dump()
    for p in space.params:
        value = p.natural(params[p.key])
        if p.name in BETA_NAMES:
            betas = list(optimizer.get("betas") or ADAM_BETAS)
            betas[BETA_NAMES[p.name]] = value
            optimizer["betas"] = betas
        else:
            optimizer[p.name] = value
    fields = {**spec.model_dump(), "name": name, "group": group, "optimizer": optimizer, "evaluate_test": seed is not None}
    if seed is not None:
        fields["seed"] = seed
    return ResolvedRun.model_validate(fields)


def natural_params(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """The optimizer's values by parameter name (momentum, not one_minus_momentum)."""
    return {p.name: p.natural(params[p.key]) for p in space.params if p.key in params}
