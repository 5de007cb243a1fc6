"""`--help` without `<bool>` beside flags.

typer (0.29 at least) fills the rich help's type column with each option's Python type, flags
included: `--quiet <bool>` reads as if the flag took a value, which it does not. A flag's type
column is left empty here, as click's plain help and earlier typer versions leave it; options
that take a value keep theirs (`<int>`, `KEY=VALUE`, ...).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_typed = getattr(TyperOption, "display_type_rich", None)


def _flag_untyped(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag and self.metavar is None:
        return None
    return _typed(self, ctx) if _typed is not None else None


if _typed is not None and getattr(_typed, "__name__", "") != _flag_untyped.__name__:
    TyperOption.display_type_rich = _flag_untyped  # type: ignore[method-assign]
