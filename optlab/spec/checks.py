"""What every spec model checks: numbers a float32 tensor holds, unknown keys refused, names
a registry knows (`optlab.spec` re-exports these). No torch import here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from optlab import registry
from optlab.registry import Kind

# The largest magnitude a float32 tensor holds: the models, losses and optimizer states train in
# float32, so a number past it (or inf, nan: TOML has them) would train silently wrong.
FLOAT32_MAX = 3.4028234663852886e38
# torch's generators take 64-bit seeds, and the data order of epoch e is seeded with
# seed * 1_000_003 + e: a seed below 2**32 keeps that in range for any number of epochs.
SEED_MAX = 2**32 - 1


def unrepresentable(value: Any, key: str) -> str | None:
    """`key = value` for the first number in `value` that a float32 tensor cannot hold, or None.
    Nested models are left to their own check."""
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        if not (abs(value) <= FLOAT32_MAX):  # also catches nan
            return f"{key} = {value}"
    elif isinstance(value, dict):
        for k, v in value.items():
            found = unrepresentable(v, f"{key}.{k}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = unrepresentable(v, f"{key}[{i}]")
            if found:
                return found
    return None


class Float32Values(BaseModel):
    """Every number a preset gives (declared fields and free arguments alike) must fit a float32
    tensor, where it ends up."""

    @model_validator(mode="after")
    def _fits_float32(self) -> Any:
        values = {**{k: getattr(self, k) for k in type(self).model_fields}, **(self.model_extra or {})}
        for key, value in values.items():
            found = unrepresentable(value, key)
            if found:
                raise ValueError(
                    f"{found} cannot be held by a float32 tensor, where it ends up: "
                    f"allowed are finite numbers of magnitude at most {FLOAT32_MAX:.4g}"
                )
        return self


class Strict(Float32Values):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def registered(value: str, kind: Kind) -> str:
    """`value` when a registry of `kind` knows it; else the registry's message (known names,
    did-you-mean, how to get a plugin's names)."""
    if value.endswith(".py") or any(c in value for c in ":/\\"):
        # A preset is data: it can never name code to import ("module:attr", a path, a file).
        raise ValueError(
            f"{kind} {value!r} looks like code; a preset names every {kind} by its registered name only. "
            "Code comes from `--plugin MODULE_OR_FILE.py` on the command line or an installed plugin package"
        )
    try:
        registry.registry().get(kind, value)
    except registry.UnknownName as exc:
        raise ValueError(str(exc)) from None  # pydantic reports ValueErrors at the field
    return value


def names_text(kind: Kind) -> str:
    """The built-in names, for field descriptions (the JSON Schema adds every registered one)."""
    return ", ".join(registry.names(kind, autoload=False))
