"""optlab: compare neural-network training configurations side by side.

The Python API (`optlab.compare`, `optlab.load`, `optlab.combine`, `optlab.lr_find`,
`optlab.Experiment`) lives in `optlab.api` and is imported on first use: `import optlab` stays
cheap, and the CLI, which imports this package, never pays for it."""

from __future__ import annotations

import importlib

from optlab.errors import OptlabError

__version__ = "0.1.0"

_API = ("compare", "load", "combine", "lr_find", "Experiment", "ResultsDocument")



def __getattr__(name: str) -> object:
    if name in _API:
        # By name: every layer imports `optlab` (for __version__), and the API sits above them all.
        return getattr(importlib.import_module("optlab.api"), name)
    raise AttributeError(f"module 'optlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["OptlabError", "__version__", *_API]
