"""The documentation covers what the code accepts."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from optlab import registry, spec
from optlab.preset import schema

DOCS = Path(__file__).parents[2] / "docs"


def _models() -> list[type[BaseModel]]:
    return [
        v for module in (spec, schema) for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == module.__name__
        and v not in (spec.Strict, spec.ResolvedRun)
    ]


def test_every_preset_field_is_documented() -> None:
    text = (DOCS / "presets.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)`", text, flags=re.M))
    missing = {f"{m.__name__}.{f}" for m in _models() for f in m.model_fields if f not in documented}
    assert not missing, f"fields missing from docs/presets.md: {sorted(missing)}"


def test_every_choice_is_documented() -> None:
    text = (DOCS / "presets.md").read_text()
    registered = [registry.names(kind, autoload=False) for kind in registry.KINDS]
    for names in (*registered, spec.ACTIVATIONS, spec.INITS, spec.LOSSES):
        for name in names:
            assert f"`{name}`" in text, name
