"""`optlab tui PRESET` and `optlab view RUN_DIR`: the interactive lab's commands.

Kept apart from `optlab/cli/main.py` so the TUI's commands can change without touching the
headless CLI. Every check that can fail on bad input runs *before* the TUI takes over the
terminal: an error then reads `optlab: error: ...` with exit code 2, like `optlab compare`,
instead of flashing a full-screen app that closes at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer

from optlab.cli.backend import (
    DEFAULT,
    AddressOption,
    BackendOption,
    CheckpointEveryOption,
    CpusPerRunOption,
    DevicesOption,
    GpusPerRunOption,
    MaxRestartsOption,
    PaceOption,
    ThreadsOption,
    Where,
    backend_options,
    forwarded,
)
from optlab.cli.common import PluginsOption, load_plugins
from optlab.cli.completion import complete_preset, complete_run_dir, complete_set
from optlab.errors import OptlabError, RunDirError


def _error(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"optlab: error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def check_out_dir(out: Path) -> None:
    """`optlab compare` refuses a non-empty output directory; say so before the TUI opens."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise RunDirError(f"{out}: output directory exists and is not empty; choose another --out")


def _launcher() -> Callable[..., int]:
    """The TUI's entry point; checked before any training starts, so that a missing textual
    never leaves a training child behind."""
    try:
        from optlab.tui.app import launch
    except ImportError as exc:  # textual missing from a trimmed install
        raise _error(f"the interactive lab is not available ({exc}); try `optlab compare`", 1) from None
    return launch


TUNE_PANEL = "Tuning (--tune)"


def tune_args(tune: bool, seeds: int | None, given: dict[str, object], runs: list[str]) -> list[str]:
    """`optlab tune`'s options for the child, as given (it checks their values before it writes
    anything, with the messages `optlab tune` gives); here only what makes no sense at all:
    a tuning option without --tune, or --seeds with it. Optuna is checked here too, so that a
    missing extra is one line before any child starts."""
    flags = {key: f"--{key.replace('_', '-')}" for key in given}
    flags["prune"] = "--prune"
    if not tune:
        named = [flags[k] for k, v in given.items() if v is not None] + (["--run"] if runs else [])
        if named:
            raise OptlabError(f"{named[0]}: only with --tune (optlab tui PRESET --tune {named[0]} ...)")
        return []
    if seeds is not None:
        raise OptlabError("--seeds: not with --tune; the best trials are retrained over --final-seeds")
    from optlab.tuning.study import check_optuna

    check_optuna()
    args = [arg for key, value in given.items() if value is not None for arg in (flags[key], str(value))]
    return args + [arg for name in runs for arg in ("--run", name)]


def tune_backend_args(where: Where) -> list[str]:
    """The where-to-train options that differ from the defaults, for `optlab tune`: it takes
    fewer of them than compare, and says so (exit 2) for one it does not take."""
    args: list[str] = []
    for field, flag in (("backend", "--backend"), ("devices", "--devices"), ("threads", "--threads"),
                        ("pace", "--pace"), ("max_restarts", "--max-restarts"), ("address", "--address"),
                        ("gpus_per_run", "--gpus-per-run"), ("cpus_per_run", "--cpus-per-run"),
                        ("checkpoint_every", "--checkpoint-every")):
        value = getattr(where, field)
        if value != getattr(DEFAULT, field):
            args += [flag, str(getattr(value, "value", value))]
    return args


app = typer.Typer()  # `tui` and `view`, added to the `optlab` command as they are


@app.command("tui")
def tui(
    preset: str = typer.Argument(
        "quickstart", help="Preset name, path to a preset TOML file, or http(s) URL.", autocompletion=complete_preset
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", "-s", metavar="KEY=VALUE", help="Override a preset field (repeatable).",
        autocompletion=complete_set,
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: runs/DATE-PRESET)."),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Repeat every run over seeds 0..N-1."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a preset from a URL without asking."),
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
    tune: bool = typer.Option(False, "--tune", rich_help_panel=TUNE_PANEL,
                              help="Tune every run with the same budget of trials (optlab tune), live."),
    budget: int | None = typer.Option(None, "--budget", rich_help_panel=TUNE_PANEL, help="Trials per candidate."),
    sampler: str | None = typer.Option(None, "--sampler", rich_help_panel=TUNE_PANEL, help="qmc, tpe, random or grid."),
    prune: str | None = typer.Option(None, "--prune", rich_help_panel=TUNE_PANEL, help="off, asha or median."),
    final_seeds: int | None = typer.Option(None, "--final-seeds", rich_help_panel=TUNE_PANEL,
                                           help="Seeds each best trial is retrained on."),
    objective: str | None = typer.Option(None, "--objective", rich_help_panel=TUNE_PANEL,
                                         help="val_accuracy or val_loss."),
    parallel: int | None = typer.Option(None, "--parallel", rich_help_panel=TUNE_PANEL,
                                        help="Trials per candidate trained side by side."),
    storage: str | None = typer.Option(None, "--storage", rich_help_panel=TUNE_PANEL, help="Optuna storage URL."),
    tune_runs: list[str] | None = typer.Option(None, "--run", rich_help_panel=TUNE_PANEL,
                                               help="Tune only this run (repeatable)."),
) -> None:
    """Train a preset's runs side by side with live charts, or tune them (--tune); training
    outlives the terminal."""
    from optlab.preset.fetch import is_url
    from optlab.preset.loader import find_preset, read_toml
    from optlab.runs.store import default_run_dir
    from optlab.tui.process import TrainingProcess
    from optlab.tui.tune_process import TuneProcess

    launch = _launcher()
    where = Where(
        backend=backend, devices=devices, threads=threads, pace=pace, max_restarts=max_restarts,
        address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, checkpoint_every=checkpoint_every,
    )
    fetched: Path | None = None
    try:
        given: dict[str, object] = {"budget": budget, "sampler": sampler, "prune": prune, "final_seeds": final_seeds,
                                    "objective": objective, "parallel": parallel, "storage": storage}
        tuning = tune_args(tune, seeds, given, tune_runs or [])
        load_plugins(plugins)  # the training child is given the same ones (TrainingProcess)
        if is_url(preset):
            fetched, name = _confirmed_remote(preset, overrides or [], yes, seeds)
            path, overrides, seeds = fetched, [], None
        else:
            path = find_preset(preset)  # cheap checks first: an unknown name answers at once
            name = str(read_toml(path).get("name") or path.stem)
        if out is not None:
            check_out_dir(out)
        if not device.startswith("cuda"):  # the spelling; CUDA itself is checked where torch is
            from optlab.cli.common import check_device

            check_device(device)
        if "cuda" not in (devices or ""):  # likewise: CUDA and the Ray cluster are checked in the child
            backend_options(where, connect=False)
    except OptlabError as exc:
        if fetched is not None:
            fetched.unlink(missing_ok=True)
        raise _error(str(exc), exc.exit_code) from None
    # The full check (load_preset with the overrides, the device, the run directory) is the one
    # `optlab compare` makes before it writes preset.toml, and it needs torch: it runs once, in
    # the training child, while we wait. The TUI process itself never imports torch, so it
    # opens and quits fast and stays small next to the training.
    process: TrainingProcess
    if tune:  # `optlab tune`'s own default directory name
        run_dir = out if out is not None else default_run_dir(f"{name}-tune")
        process = TuneProcess(str(path), run_dir, device, overrides or [], tuning, tune_backend_args(where))
    else:
        run_dir = out if out is not None else default_run_dir(name)
        process = TrainingProcess(str(path), run_dir, device, overrides or [], seeds, forwarded(where))
    sys.stderr.write(f"optlab: checking {path} and starting {'the study' if tune else 'training'}...\n")
    process.start()
    try:
        code = process.wait_validated()
    except KeyboardInterrupt:
        process.stop(timeout=5.0)
        process.forget()
        raise typer.Exit(130) from None
    finally:
        if fetched is not None:  # the child has read it (and keeps it as DIR/preset.toml)
            fetched.unlink(missing_ok=True)
    if code is not None:
        sys.stderr.write((process.error_lines() or f"optlab: error: training exited with code {code}") + "\n")
        process.forget()
        raise typer.Exit(code if code else 1)
    raise typer.Exit(launch(process=process, label=name))


def _confirmed_remote(url: str, overrides: list[str], yes: bool, seeds: int | None = None) -> tuple[Path, str]:
    """Fetch, validate and confirm a URL preset here, where the terminal is, and hand the child
    the resolved preset that was confirmed (not the URL, whose answer could change meanwhile)."""
    import tempfile

    from optlab.cli.common import preset_toml
    from optlab.cli.preset_commands import confirm_remote
    from optlab.preset.loader import load_preset

    loaded = load_preset(url, overrides, seeds=seeds)
    confirm_remote(loaded, yes)
    fd, name = tempfile.mkstemp(prefix="optlab-url-", suffix=".toml")
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(preset_toml(loaded.preset))
    return Path(name), loaded.preset.name


@app.command("view")
def view(
    run_dir: Path = typer.Argument(
        ..., help="A run directory (finished, or still training).", autocompletion=complete_run_dir
    ),
) -> None:
    """Open a run directory in the TUI: a finished experiment, or a running one followed live."""
    from optlab.tui.process import check_run_dir

    try:
        check_run_dir(run_dir)
    except OptlabError as exc:
        raise _error(str(exc), exc.exit_code) from None
    raise typer.Exit(_launcher()(view=run_dir))
