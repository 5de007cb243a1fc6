"""The `optlab` command line: compare configurations headlessly, manage presets, list and report runs.

Heavy modules (torch, the engine) are imported inside the commands that need them, so
`optlab --help` and `optlab presets list` answer at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from optlab import __version__
from optlab.cli import (
    export_commands,
    lr_find_command,
    plugin_commands,
    preset_commands,
    results_commands,
    run_commands,
    tui_commands,
    tune_command,
)
from optlab.cli.backend import (
    DEFAULT,
    AddressOption,
    BackendOption,
    CheckpointEveryOption,
    CpusPerRunOption,
    DevicesOption,
    FuseOption,
    GpusPerRunOption,
    MaxRestartsOption,
    PaceOption,
    ThreadsOption,
    Where,
    backend_options,
    start_workers_early,
)
from optlab.cli.common import (
    Format,
    PluginsOption,
    check_device,
    check_html_format,
    emit,
    leave,
    load_plugins,
    preset_toml,
    print_error,
    stderr_console,
    user_errors,
)
from optlab.cli.completion import complete_preset, complete_run_dir, complete_set
from optlab.cli.interrupts import (
    exit_130,
    interrupted_exit,
    leave_on_next_interrupt,
    second_interrupt_exits,
    stop_on_sigterm,
)
from optlab.errors import ClusterLost, OptlabError, Terminated

app = typer.Typer(
    name="optlab",
    help="Train several PyTorch configurations side by side on one dataset and compare them.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"optlab {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    plugins: PluginsOption = None,
) -> None:
    """Without a command, open the interactive lab (TUI)."""
    if ctx.invoked_subcommand is not None:
        # `optlab --plugin F COMMAND` as `optlab COMMAND --plugin F`: every command reads the
        # process-wide registries, and the TUI passes what they loaded on to its children.
        with user_errors():
            load_plugins(plugins)
        return
    try:
        from optlab.tui.app import launch
    except ImportError as exc:
        print_error(f"the interactive lab is not available ({exc}); try `optlab compare` or `optlab --help`")
        raise typer.Exit(1) from None
    with user_errors():
        load_plugins(plugins)  # the start screen validates presets, and its training child gets them
        launch(preset=None)


# ---------------------------------------------------------------- output


# ---------------------------------------------------------------- compare


def _missing_dirs(path: Path) -> list[Path]:
    """The directories `path` needs that do not exist yet, deepest first."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    return missing


def _discard_run_dir(root: Path, created: list[Path]) -> None:
    """Remove what `compare` wrote before training started, leaving nothing half-made."""
    from optlab.runs.owner import release

    if (root / "events.jsonl").exists() or (root / "results.json").exists():
        return
    from optlab.runs.command_line import OVERRIDES_FILE

    release(root)
    with contextlib.suppress(OSError):
        (root / "preset.toml").unlink(missing_ok=True)
        (root / OVERRIDES_FILE).unlink(missing_ok=True)
        for d in created:
            d.rmdir()


@app.command()
def compare(
    preset: str = typer.Argument(
        "quickstart", help="Preset name, path to a preset TOML file, or http(s) URL.", autocompletion=complete_preset
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: runs/DATE-PRESET)."),
    overrides: list[str] | None = typer.Option(
        None,
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a preset field, e.g. train.epochs=2 (repeatable).",
        autocompletion=complete_set,
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="What to print on stdout at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Repeat every run over seeds 0..N-1."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a preset from a URL without asking."),
    plugins: PluginsOption = None,
    no_charts: bool = typer.Option(False, "--no-charts", help="Skip charts/*.svg and report.html."),
    backend: BackendOption = DEFAULT.backend,
    devices: DevicesOption = DEFAULT.devices,
    threads: ThreadsOption = DEFAULT.threads,
    pace: PaceOption = DEFAULT.pace,
    max_restarts: MaxRestartsOption = DEFAULT.max_restarts,
    address: AddressOption = DEFAULT.address,
    gpus_per_run: GpusPerRunOption = DEFAULT.gpus_per_run,
    cpus_per_run: CpusPerRunOption = DEFAULT.cpus_per_run,
    checkpoint_every: CheckpointEveryOption = DEFAULT.checkpoint_every,
    fuse: FuseOption = DEFAULT.fuse,
) -> None:
    """Train every run of a preset side by side and print the comparison."""
    from optlab.cli.preset_commands import confirm_remote
    from optlab.preset.loader import load_preset
    from optlab.runs.store import default_run_dir, prepare_run_dir

    stop_on_sigterm()
    with user_errors():
        load_plugins(plugins)
        check_html_format(fmt, no_charts)
        loaded = load_preset(preset, overrides or [], seeds=seeds)
        for note in loaded.notes:  # optional runs left out, sweeps of multiplier learning rates
            sys.stderr.write(f"optlab: note: {note}\n")
        confirm_remote(loaded, yes)
        given_where = Where(
            backend=backend, devices=devices, threads=threads, pace=pace, max_restarts=max_restarts,
            address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, checkpoint_every=checkpoint_every,
            fuse=fuse,
        )
        start_workers_early(given_where, loaded.preset.data)
        device = check_device(device)
        where = backend_options(given_where)
        root = out if out is not None else default_run_dir(loaded.preset.name)
        created = _missing_dirs(root)
        prepare_run_dir(root)
    try:
        code = _compare_in(root, created, loaded, device, fmt, quiet, where, charts=not no_charts,
                           given=(overrides or [], seeds))
    except KeyboardInterrupt as exc:
        code = interrupted_exit(exc)
    raise typer.Exit(code)


def _compare_in(
    root: Path, created: list[Path], loaded: Any, device: str, fmt: Format, quiet: bool, where: Any,
    charts: bool = True, given: tuple[list[str], int | None] = ([], None),
) -> int:
    """Train into `root`; `given` (the --set items and --seeds) is recorded for `optlab runs`."""
    from optlab.runs.command_line import write_overrides
    from optlab.runs.files import atomic_write_text

    try:
        with user_errors():
            atomic_write_text(root / "preset.toml", preset_toml(loaded.preset))
            write_overrides(root, *given)
            from optlab.experiment import prepare

            specs, data, device = prepare(loaded, device, where)
    except BaseException:
        _discard_run_dir(root, created)
        raise
    return train(root, loaded, specs, data, device, fmt, quiet, backend=where, charts=charts)


def train(
    root: Path,
    loaded: Any,
    specs: list[Any],
    data: Any,
    device: str,
    fmt: Format,
    quiet: bool,
    plan: Any = None,
    backend: Any = None,
    charts: bool = True,
) -> int:
    """Run the experiment into `root` (fresh, or continuing `plan`), print, return the exit code."""
    from optlab.console.progress import ConsoleProgress
    from optlab.experiment import train_into

    progress = None if quiet else ConsoleProgress()
    outcome = train_into(
        root, loaded, specs, data, device,
        sinks=[] if progress is None else [progress],
        backend=backend,
        plan=plan,
        on_interrupt=leave_on_next_interrupt,
        cleanup_guard=second_interrupt_exits,
        charts=charts,
    )
    storage_error, interrupted, results = outcome.storage_error, outcome.interrupted, outcome.results
    if storage_error is not None:
        print_error(f"{storage_error}")
        print_error(f"the runs were stopped; what {root} held before the failure is intact")
        return storage_error.exit_code
    emit(results, fmt, root)
    from rich.text import Text

    console = stderr_console()
    if outcome.cluster_lost is not None:
        # Plain, not through rich: one line however narrow the terminal, for the scheduler's log.
        sys.stderr.write(f"optlab: the Ray cluster lost a node process ({outcome.cluster_lost}); the runs are "
                         f"saved where they stopped: optlab resume {root}\n")
        sys.stderr.flush()
    elif interrupted:
        console.print(
            f"[yellow]{'terminated (SIGTERM)' if outcome.terminated else 'interrupted'}:[/] the runs were "
            f"stopped; partial results and checkpoints are kept (continue with `optlab resume {root}`)"
        )
    console.print(Text.assemble("results in ", (str(root), "bold")))
    if outcome.cluster_lost is not None:
        return ClusterLost.exit_code
    if interrupted:
        return Terminated.exit_code if outcome.terminated else 130
    statuses = [r.get("status") for r in results.get("runs") or []]
    if statuses and all(s == "failed" for s in statuses):
        print_error(f"every run failed; see {root}/runs/*/log.txt")
        return 1
    return 0


@app.command()
def resume(
    run_dir: Path = typer.Argument(
        ..., help="A run directory written by `optlab compare`.", autocompletion=complete_run_dir
    ),
    force: bool = typer.Option(
        False, "--force", help="Resume even if the preset or optlab version differs from the checkpoints."
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="What to print on stdout at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    plugins: PluginsOption = None,
    backend: BackendOption = DEFAULT.backend,
    devices: DevicesOption = DEFAULT.devices,
    threads: ThreadsOption = DEFAULT.threads,
    pace: PaceOption = DEFAULT.pace,
    max_restarts: MaxRestartsOption = DEFAULT.max_restarts,
    address: AddressOption = DEFAULT.address,
    gpus_per_run: GpusPerRunOption = DEFAULT.gpus_per_run,
    cpus_per_run: CpusPerRunOption = DEFAULT.cpus_per_run,
    checkpoint_every: CheckpointEveryOption = DEFAULT.checkpoint_every,
) -> None:
    """Continue every unfinished run of a run directory from its last checkpoint."""
    from optlab.data.datasets import load_dataset
    from optlab.experiment import placement_devices
    from optlab.runs.owner import claim, release
    from optlab.runs.resume import plan_resume
    from optlab.training.threads import DEFAULT_THREADS

    stop_on_sigterm()
    from optlab.tuning.resume import check_resumable, is_tune_dir

    if is_tune_dir(run_dir):
        from optlab.cli.tune_command import resume_tune

        with user_errors():
            load_plugins(plugins)
        resume_tune(run_dir, force, device, Where(
            backend=backend, devices=devices, threads=threads, pace=pace, max_restarts=max_restarts,
            address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, checkpoint_every=checkpoint_every,
        ), fmt.value, quiet)
    with user_errors():
        check_resumable(run_dir)
        load_plugins(plugins)
        where = backend_options(Where(
            backend=backend, devices=devices, threads=threads, pace=pace, max_restarts=max_restarts,
            address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, checkpoint_every=checkpoint_every,
        ))
        device, data_device = placement_devices(check_device(device), where)
        plan = plan_resume(run_dir, device, force=force)
        pending = [s.name for s in plan.specs if s.name not in plan.done]
        if not pending:
            sys.stderr.write(f"optlab: every run in {run_dir} has already ended; nothing to resume\n")
            from optlab.experiment import close_ended

            claim(run_dir)
            try:
                results = close_ended(run_dir)
            finally:
                release(run_dir)
            emit(results, fmt, run_dir)
            raise typer.Exit(0)
        resumed = ", ".join(
            f"{name} (from epoch {plan.states[name]['epoch']})" if name in plan.states else f"{name} (restart)"
            for name in pending
        )
        sys.stderr.write(f"optlab: resuming {resumed}\n")
        # The runs go on with the threads they trained with, unless --threads says otherwise.
        if where.threads is None and plan.recorded_threads() is not None:
            where = dataclasses.replace(where, threads=plan.recorded_threads())
        for note in plan.environment_notes(where.threads or DEFAULT_THREADS):
            sys.stderr.write(f"optlab: note: {note}\n")
        claim(run_dir)  # one atomic step: of two resumes started together, one trains
        try:
            data = load_dataset(plan.loaded.preset.data, data_device)
            plan.check_data(data.facts(), force)
        except BaseException:
            release(run_dir)
            raise
    try:
        code = train(run_dir, plan.loaded, plan.specs, data, device, fmt, quiet, plan=plan, backend=where)
    except KeyboardInterrupt as exc:
        code = interrupted_exit(exc)
    raise typer.Exit(code)


def run() -> None:
    """Console-script entry point."""
    try:
        try:
            app(prog_name="optlab")
        except OptlabError as exc:
            print_error(str(exc))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            sys.exit(interrupted_exit(exc))
        finally:
            # Python puts back the default SIGINT action while it shuts down: a second Ctrl-C
            # then would end the process by signal instead of with 130.
            if signal.getsignal(signal.SIGINT) is exit_130:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
    except SystemExit as exc:
        leave(exc)


# After `compare` and `resume`, in the order `optlab --help` lists them: the unnamed ones add
# their commands to `optlab` itself.
app.add_typer(run_commands.app)
app.add_typer(tui_commands.app)
app.add_typer(plugin_commands.app)
app.add_typer(lr_find_command.app)
app.add_typer(tune_command.app)
app.add_typer(preset_commands.app, name="presets")
app.add_typer(export_commands.export_app, name="export")
app.add_typer(results_commands.app, name="results")
