"""`--set key.path=value`: command-line changes to a preset's raw data, before validation."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from optlab.errors import PresetError
from optlab.preset.schema import Preset


def parse_value(text: str) -> Any:
    """`--set` values are TOML values; a bare word that is not valid TOML is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides. `runs.NAME.field` targets one run;
    `train.*` / `model.*` / `data.*` set the shared defaults."""
    result = json.loads(json.dumps(raw))  # deep copy of plain TOML data
    for item in overrides:
        key, sep, value_text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise PresetError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=2")
        parts = key.split(".")
        value = parse_value(value_text.strip())
        if parts[0] == "runs":
            if len(parts) < 3:
                raise PresetError(f"--set {item!r}: use runs.RUN_NAME.FIELD=value")
            runs = result.get("runs") or []
            match = [r for r in runs if isinstance(r, dict) and r.get("name") == parts[1]]
            if not match:
                names = ", ".join(str(r.get("name")) for r in runs if isinstance(r, dict))
                raise PresetError(f"--set {item!r}: no run named {parts[1]!r}; runs: {names}")
            target, path = match[0], parts[2:]
        elif parts[0] == "extends":
            # Overrides apply after `extends` has been followed, so it would be silently ignored.
            raise PresetError(
                f"--set {item!r}: extends cannot be set on the command line; write "
                f"extends = {json.dumps(value)} in the preset file (or start one with "
                "`optlab presets new NAME --from PRESET`)"
            )
        else:
            if parts[0] not in Preset.model_fields:
                allowed = ", ".join(f for f in Preset.model_fields if f not in ("runs", "extends"))
                raise PresetError(f"--set {item!r}: unknown section {parts[0]!r}; allowed: {allowed}, runs")
            target, path = result, parts
        for part in path[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise PresetError(f"--set {item!r}: {part!r} is not a table")
            target = nxt
        target[path[-1]] = value
        drop_other_seed(target, path[-1])
    return result


def drop_other_seed(table: dict[str, Any], key: str) -> None:
    """`seed` and `seeds` in one table are an error; one given later (on the command line, or
    by an extending preset) replaces the other, as it does for every other field."""
    other = {"seed": "seeds", "seeds": "seed"}.get(key)
    if other is not None:
        table.pop(other, None)
