"""Verdicts of the torch-backed run checks, kept by what decides them.

`check_run`'s last checks build the model, take a trial optimizer step and dry-run the
schedule. They need torch, and torch's optimizers import torch._dynamo on first use: together
about three times a bare `import torch`, paid by every `presets validate` and `compare`. Their
verdict depends only on the registry entries involved (their factory references and sources),
the installed torch, optlab's own code and the run's model, optimizer, scheduler and epochs,
so a passed check is remembered under a hash of exactly those: validating an unchanged preset
again imports no torch at all.

Only passes are kept (an error is always computed afresh, so its message is current), and only
for entries whose code that key names: optlab's own and installed packages' with a version.
A plugin file's entries, or factories registered as callables, are checked every time.
`OPTLAB_CHECK_CACHE`: a directory to keep them in, or `off`; default: the per-user cache.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from optlab import registry
from optlab.registry import Entry

ENV = "OPTLAB_CHECK_CACHE"
FORMAT = 1
# In-process: `load_preset` checks each run twice (validation, then the runs it returns).
_PASSED: set[str] = set()


def cache_dir() -> Path | None:
    value = os.environ.get(ENV, "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("optlab")) / "checks"


@functools.lru_cache(maxsize=1)
def optlab_code() -> str:
    """optlab's own code as it is now: every module's path, size and modification time (an
    edited checkout checks again; an installed release keeps its verdicts)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def torch_build() -> str | None:
    """The installed torch's version file (version and git commit), found without importing
    torch; None when it cannot be read (then nothing is cached)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        with contextlib.suppress(OSError):
            return (Path(location) / "version.py").read_text(encoding="utf-8")
    return None


def _entry_identity(entry: Entry) -> dict[str, Any] | None:
    """What names an entry's code, or None when nothing does (a callable, a plugin file's)."""
    source = entry.source
    if not isinstance(entry.target, str) or source.origin == "file":
        return None
    if source.origin == "package" and not source.version:
        return None
    return {
        "kind": entry.kind,
        "name": entry.name,
        "target": entry.target,
        "capabilities": sorted(entry.capabilities),
        "source": source.to_dict(),
        "extra": json.loads(json.dumps(entry.extra, sort_keys=True, default=_named)),
    }


def _named(value: object) -> str:
    """A callable in an entry's facts (a plugin's vectorized update) by its name: its repr
    holds a memory address, a new key in every process."""
    return f"{getattr(value, '__module__', '')}:{getattr(value, '__qualname__', type(value).__name__)}"


def check_key(entries: Iterable[tuple[registry.Kind, str]], facts: dict[str, Any]) -> str | None:
    """The key of a check over these registry entries and these facts, or None when the check
    must run every time."""
    torch = torch_build()
    if torch is None:
        return None
    identities = []
    for kind, name in entries:
        entry = registry.registry().find(kind, name)
        identity = None if entry is None else _entry_identity(entry)
        if identity is None:
            return None
        identities.append(identity)
    doc = {
        "format": FORMAT,
        "python": sys.version,
        "optlab": optlab_code(),
        "torch": torch,
        "entries": identities,
        "facts": facts,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def cached_check(key: str | None, check: Callable[[], str | None]) -> str | None:
    """`check()`, unless a check with this key has passed before."""
    folder = cache_dir()
    if key is None or folder is None:
        return check()
    if key in _PASSED or (folder / key).is_file():
        _PASSED.add(key)
        return None
    problem = check()
    if problem is None:
        _PASSED.add(key)
        with contextlib.suppress(OSError):  # a read-only cache only costs the next run its time
            folder.mkdir(parents=True, exist_ok=True)
            (folder / key).touch()
    return problem
