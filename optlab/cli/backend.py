"""The options that say where runs train, shared by `compare`, `resume` and `tui`.

They are checked before anything is written: a malformed `--devices`, a device that does not
exist, or `--devices` without `--backend processes` is one line and exit code 2.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from optlab.errors import OptlabError

if TYPE_CHECKING:
    from optlab.experiment import BackendOptions


class Backend(StrEnum):
    local = "local"
    processes = "processes"


class Pace(StrEnum):
    even = "even"
    free = "free"


BACKEND = typer.Option(
    Backend.local, "--backend", help="Where runs train: local (interleaved in this process) or processes."
)
DEVICES = typer.Option(
    None, "--devices", metavar="LIST",
    help="processes: one worker per entry, e.g. cuda:0,cuda:1, cuda (every GPU) or cpu,cpu.",
)
THREADS = typer.Option(None, "--threads", min=1, help="Torch threads per worker (default: cores / workers).")
PACE = typer.Option(
    Pace.even, "--pace", help="even: runs stay at about the same share of their work; free: each as fast as it can."
)
MAX_RESTARTS = typer.Option(
    2, "--max-restarts", min=0, help="Restarts of a run whose worker died, from its last checkpoint."
)


def backend_options(
    backend: Backend, devices: str | None, threads: int | None, pace: Pace, max_restarts: int
) -> BackendOptions:
    """The checked options (raises OptlabError with the one line to print)."""
    from optlab.experiment import BackendOptions

    parsed = None
    if devices is not None:
        if backend is not Backend.processes:
            raise OptlabError(f"--devices {devices}: only the processes backend takes it; add --backend processes")
        from optlab.training.processes import parse_devices

        parsed = parse_devices(devices)
    return BackendOptions(backend.value, parsed, threads, pace.value, max_restarts)


def forwarded(
    backend: Backend, devices: str | None, threads: int | None, pace: Pace, max_restarts: int
) -> list[str]:
    """The same options as arguments of `optlab compare` (the TUI's training child)."""
    args = ["--backend", backend.value, "--pace", pace.value, "--max-restarts", str(max_restarts)]
    if devices is not None:
        args += ["--devices", devices]
    if threads is not None:
        args += ["--threads", str(threads)]
    return args
