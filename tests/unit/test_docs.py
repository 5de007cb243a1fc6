"""The documentation covers what the code accepts."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from optlab.preset import schema

DOCS = Path(__file__).parents[2] / "docs"


def _models() -> list[type[BaseModel]]:
    return [
        v for v in vars(schema).values()
        if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == schema.__name__
        and v not in (schema.Strict, schema.ResolvedRun)
    ]


def test_every_preset_field_is_documented() -> None:
    text = (DOCS / "presets.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)`", text, flags=re.M))
    missing = {f"{m.__name__}.{f}" for m in _models() for f in m.model_fields if f not in documented}
    assert not missing, f"fields missing from docs/presets.md: {sorted(missing)}"


def test_every_choice_is_documented() -> None:
    text = (DOCS / "presets.md").read_text()
    for names in (schema.DATASETS, schema.MODELS, schema.ACTIVATIONS, schema.INITS, schema.LOSSES,
                  schema.OPTIMIZERS, schema.SCHEDULERS):
        for name in names:
            assert f"`{name}`" in text, name
