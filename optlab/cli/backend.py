"""The options that say where runs train, shared by `compare`, `resume` and `tui`.

They are checked before anything is written: a malformed `--devices`, a device that does not
exist, or `--devices` without `--backend processes` is one line and exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from optlab.errors import OptlabError

if TYPE_CHECKING:
    from optlab.experiment import BackendOptions
    from optlab.spec import DataConfig


class Backend(StrEnum):
    local = "local"
    processes = "processes"
    ray = "ray"


class Pace(StrEnum):
    even = "even"
    free = "free"


class Fuse(StrEnum):
    off = "off"
    auto = "auto"


@dataclass(frozen=True)
class Where:
    """The options as given on the command line."""

    backend: Backend = Backend.local
    devices: str | None = None
    threads: int | None = None
    pace: Pace = Pace.even
    max_restarts: int = 2
    address: str | None = None
    gpus_per_run: float | None = None
    cpus_per_run: float | None = None
    checkpoint_every: str | None = None
    fuse: Fuse = Fuse.off


PANEL = "Where runs train"  # one section of --help for these options, on every command

# Each option once: `compare`, `resume` and `tui` take these aliases, with the defaults of
# `Where` (DEFAULT), so a help text or a default cannot drift between the commands.
BackendOption = Annotated[Backend, typer.Option(
    "--backend", rich_help_panel=PANEL,
    help="Where runs train: local (interleaved in this process), processes (--devices) or ray (each run an actor).",
)]
DevicesOption = Annotated[str | None, typer.Option(
    "--devices", metavar="LIST", rich_help_panel=PANEL,
    help="processes: one worker per entry, e.g. cuda:0,cuda:1, cuda (every GPU) or cpu,cpu.",
)]
ThreadsOption = Annotated[int | None, typer.Option(
    "--threads", min=1, rich_help_panel=PANEL,
    help="Torch threads per training process (default 1: part of a run's numbers; resume keeps the recorded count).",
)]
PaceOption = Annotated[Pace, typer.Option(
    "--pace", rich_help_panel=PANEL,
    help="even: runs stay at about the same share of their work; free: each as fast as it can.",
)]
AddressOption = Annotated[str | None, typer.Option(
    "--address", metavar="ADDR", rich_help_panel=PANEL,
    help="ray: join this cluster (HOST:PORT, or auto: RAY_ADDRESS or this machine's); default: a local Ray.",
)]
GpusPerRunOption = Annotated[float | None, typer.Option(
    "--gpus-per-run", min=0.0, rich_help_panel=PANEL,
    help="ray: GPUs per run, fractions allowed (default: 1 where there are GPUs).",
)]
CpusPerRunOption = Annotated[float | None, typer.Option(
    "--cpus-per-run", min=0.01, rich_help_panel=PANEL, help="ray: CPUs per run (default 1).",
)]
CheckpointEveryOption = Annotated[str | None, typer.Option(
    "--checkpoint-every", metavar="INTERVAL", rich_help_panel=PANEL,
    help="When each run saves its checkpoint: seconds of its training (10s, 2m) or epochs (1, 5); "
    "always at its end and when interrupted. Default 10s.",
)]
FuseOption = Annotated[Fuse, typer.Option(
    "--fuse", rich_help_panel=PANEL,
    help="auto: runs of the same shape, data order and length train as one stacked model (a group "
    "trains on one processes worker or in one Ray actor; the others train unfused, with a note saying why); "
    "off: every run on its own.",
)]
MaxRestartsOption = Annotated[int, typer.Option(
    "--max-restarts", min=0, rich_help_panel=PANEL,
    help="Restarts of a run whose worker died, from its last checkpoint.",
)]


DEFAULT = Where()  # the defaults every command's signature takes


def backend_options(where: Where, connect: bool = True) -> BackendOptions:
    """The checked options (raises OptlabError with the one line to print). `connect`: also ask
    the backend (ray: the extra, the cluster, its resources); the TUI leaves that to its child."""
    from optlab.experiment import BackendOptions, check_backend

    parsed = None
    if where.devices is not None:
        if where.backend is not Backend.processes:
            raise OptlabError(
                f"--devices {where.devices}: only the processes backend takes it; add --backend processes"
            )
        from optlab.training.processes import parse_devices

        parsed = parse_devices(where.devices)
    if where.backend is not Backend.ray:
        for flag, value in (("--address", where.address), ("--gpus-per-run", where.gpus_per_run),
                            ("--cpus-per-run", where.cpus_per_run)):
            if value is not None:
                raise OptlabError(f"{flag} {value}: only the ray backend takes it; add --backend ray")
    elif not connect:
        from optlab.training.ray_cluster import require_ray

        require_ray()
    from optlab.training.checkpoint_policy import DEFAULT_EVERY, parse_checkpoint_every

    options = BackendOptions(
        name=where.backend.value, devices=parsed, threads=where.threads, pace=where.pace.value,
        max_restarts=where.max_restarts, address=where.address, gpus_per_run=where.gpus_per_run,
        cpus_per_run=where.cpus_per_run or 1.0,
        checkpoints=parse_checkpoint_every(where.checkpoint_every or DEFAULT_EVERY), fuse=where.fuse.value,
    )
    return check_backend(options) if connect else options


def start_workers_early(where: Where, data: DataConfig) -> None:
    """processes with `--devices`: start the workers now, before this process imports torch, so
    that their start (torch, the training modules, the dataset) overlaps the driver's own. A
    malformed `--devices` starts nothing: `backend_options` says what is wrong."""
    if where.backend is not Backend.processes or where.devices is None:
        return
    from optlab.registry import loaded_plugins
    from optlab.training.processes import parse_devices, prespawn

    try:
        devices = parse_devices(where.devices)
    except OptlabError:
        return
    prespawn(devices, where.threads, loaded_plugins(), data)


def forwarded(where: Where) -> list[str]:
    """The same options as arguments of `optlab compare` (the TUI's training child)."""
    args = ["--backend", where.backend.value, "--pace", where.pace.value, "--max-restarts", str(where.max_restarts)]
    if where.fuse is not Fuse.off:
        args += ["--fuse", where.fuse.value]
    for flag, value in (("--devices", where.devices), ("--threads", where.threads), ("--address", where.address),
                        ("--gpus-per-run", where.gpus_per_run), ("--cpus-per-run", where.cpus_per_run),
                        ("--checkpoint-every", where.checkpoint_every)):
        if value is not None:
            args += [flag, str(value)]
    return args
