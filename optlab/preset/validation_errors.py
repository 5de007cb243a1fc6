"""Pydantic's validation errors as optlab's messages: one line per problem, naming the file,
the field path (a run by its index and name), the bad value and what is allowed (did-you-mean
for unknown keys)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from optlab.preset.schema import NO_RUNS

# Error types whose message already says what was given: no "(got ...)" after it.
OWN_WORDS = ("missing", "no_runs", "duplicate_run_name")


def _field_path(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    out: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and i > 0 and loc[i - 1] == "runs":
            runs = raw.get("runs") or []
            name = runs[part].get("name") if part < len(runs) and isinstance(runs[part], dict) else None
            out[-1] = f"runs[{part}]" + (f" ({name})" if name else "")
        else:
            out.append(str(part))
    return ".".join(out)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Known field names at a location, for did-you-mean suggestions on unknown keys."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for cand in candidates:
            for sub in (cand, *getattr(cand, "__args__", ())):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    current = sub
                    break
            else:
                continue
            break
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def format_validation_error(exc: ValidationError, origin: str, raw: dict[str, Any], model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "duplicate_run_name":  # raised on the whole list: point at the run
            loc = (*loc, err["ctx"]["index"], "name")
        where = _field_path(loc, raw) or "(top level)"
        if loc == ("runs",) and err["type"] == "missing":
            msg = NO_RUNS  # the same words as for `runs = []`, not pydantic's "Field required"
        elif err["type"] == "extra_forbidden":
            known = _fields_at(model, loc)
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = f"unknown key {loc[-1]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            if known:
                msg += f"; allowed: {', '.join(known)}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and err["type"] not in OWN_WORDS and not isinstance(err["input"], dict):
                msg += f" (got {err['input']!r})"
        lines.append(f"{origin}: {where}: {msg}")
    return "\n".join(lines)
