"""The `optlab` command line: compare configurations headlessly, manage presets, list and report runs.

Heavy modules (torch, the engine) are imported inside the commands that need them, so
`optlab --help` and `optlab presets list` answer at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from optlab import __version__
from optlab.errors import OptlabError

app = typer.Typer(
    name="optlab",
    help="Train several PyTorch configurations side by side on one dataset and compare them.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
presets_app = typer.Typer(
    help="List, show, validate presets and print their JSON Schema.", no_args_is_help=True
)
app.add_typer(presets_app, name="presets")


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _error(message: str) -> None:
    sys.stderr.write(f"optlab: error: {message}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """An OptlabError becomes one message on stderr and its exit code, never a traceback."""
    try:
        yield
    except OptlabError as exc:
        _error(str(exc))
        raise typer.Exit(exc.exit_code) from None


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
) -> None:
    """Without a command, open the interactive lab (TUI)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from optlab.tui.app import launch
    except ImportError as exc:
        _error(f"the interactive lab is not available ({exc}); try `optlab compare` or `optlab --help`")
        raise typer.Exit(1) from None
    with user_errors():
        launch(preset=None)


# ---------------------------------------------------------------- output


def emit(results: dict[str, Any], fmt: Format) -> None:
    """Write a results document to stdout in the chosen format (and nothing else to stdout)."""
    from optlab.runs.reports import to_csv, to_json, to_markdown

    if fmt is Format.table:
        from rich.console import Console

        from optlab.console.tables import print_results

        print_results(Console(), results)
        return
    text = {Format.json: to_json, Format.markdown: to_markdown, Format.csv: to_csv}[fmt](results)
    sys.stdout.write(text)
    sys.stdout.flush()


# ---------------------------------------------------------------- compare


def check_device(device: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise OptlabError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise OptlabError(
                f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                f"{'no GPU found' if torch.version.cuda else 'built without CUDA'}); use --device cpu or auto"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise OptlabError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def preset_toml(preset: Any) -> str:
    """The resolved preset as TOML (TOML has no null: unset fields are left out)."""
    import tomli_w

    return tomli_w.dumps(preset.model_dump(mode="json", exclude_none=True))


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
    if (root / "events.jsonl").exists() or (root / "results.json").exists():
        return
    with contextlib.suppress(OSError):
        (root / "preset.toml").unlink(missing_ok=True)
        for d in created:
            d.rmdir()


def _exit_130(*_: object) -> None:
    os._exit(130)


def _leave_on_next_interrupt() -> None:
    """After a first Ctrl-C the process is on its way out: another one leaves at once, with 130,
    however soon it comes (files are written atomically, so nothing is left half-made)."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to install
        signal.signal(signal.SIGINT, _exit_130)


@contextlib.contextmanager
def _second_interrupt_exits() -> Iterator[None]:
    """During cleanup after Ctrl-C, another Ctrl-C leaves at once (files are written atomically)."""
    try:
        previous = signal.signal(signal.SIGINT, _exit_130)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@app.command()
def compare(
    preset: str = typer.Argument("quickstart", help="Preset name or path to a preset TOML file."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: runs/DATE-PRESET)."),
    overrides: list[str] | None = typer.Option(
        None,
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a preset field, e.g. train.epochs=2 (repeatable).",
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="What to print on stdout at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Repeat every run over seeds 0..N-1."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a preset from a URL without asking."),
) -> None:
    """Train every run of a preset side by side and print the comparison."""
    from optlab.cli.preset_commands import confirm_remote
    from optlab.preset.loader import load_preset
    from optlab.runs.store import default_run_dir, prepare_run_dir

    with user_errors():
        loaded = load_preset(preset, overrides or [], seeds=seeds)
        confirm_remote(loaded, yes)
        device = check_device(device)
        root = out if out is not None else default_run_dir(loaded.preset.name)
        created = _missing_dirs(root)
        prepare_run_dir(root)
    try:
        code = _compare_in(root, created, loaded, device, fmt, quiet)
    except KeyboardInterrupt:
        _leave_on_next_interrupt()
        sys.stderr.write("\noptlab: interrupted\n")
        code = 130
    raise typer.Exit(code)


def _compare_in(root: Path, created: list[Path], loaded: Any, device: str, fmt: Format, quiet: bool) -> int:
    from optlab.runs.store import atomic_write_text

    try:
        with user_errors():
            atomic_write_text(root / "preset.toml", preset_toml(loaded.preset))
            from optlab.experiment import prepare

            specs, data, device = prepare(loaded, device)
    except BaseException:
        _discard_run_dir(root, created)
        raise
    return train(root, loaded, specs, data, device, fmt, quiet)


def train(
    root: Path,
    loaded: Any,
    specs: list[Any],
    data: Any,
    device: str,
    fmt: Format,
    quiet: bool,
    plan: Any = None,
) -> int:
    """Run the experiment into `root` (fresh, or continuing `plan`), print, return the exit code."""
    from optlab.console.progress import ConsoleProgress
    from optlab.errors import StorageError
    from optlab.runs.control import FileControl
    from optlab.runs.reports import write_reports
    from optlab.runs.store import RunStore, load_results
    from optlab.training.runner import Runner

    if plan is not None:
        # Controls belong to the process that was stopped: a resumed run starts unpaused.
        (root / "control.json").unlink(missing_ok=True)
    store = RunStore(root, resume=plan is not None)
    progress = None if quiet else ConsoleProgress()
    sinks: list[Any] = [store] if progress is None else [store, progress]
    runner = Runner(
        specs,
        data,
        device,
        sinks,
        FileControl(root),
        preset=loaded.preset.model_dump(mode="json"),
        resume=plan.states if plan is not None else None,
        finished=plan.done if plan is not None else (),
    )
    interrupted = False
    storage_error: StorageError | None = None
    try:
        runner.run()
    except KeyboardInterrupt:
        _leave_on_next_interrupt()
        interrupted = True
    except StorageError as exc:
        storage_error = exc
    finally:
        with _second_interrupt_exits():
            if progress is not None:
                progress.close()
            try:
                store.close()
                results = load_results(root)
                write_reports(root, results)
            except (StorageError, OSError) as exc:
                storage_error = storage_error or StorageError(f"{root}: cannot write ({exc})")
    if storage_error is not None:
        _error(f"{storage_error}")
        _error(f"the runs were stopped; what {root} held before the failure is intact")
        return storage_error.exit_code
    emit(results, fmt)
    from rich.text import Text

    console = _stderr()
    if interrupted:
        console.print(
            "[yellow]interrupted:[/] the runs were stopped; partial results and checkpoints are kept "
            f"(continue with `optlab resume {root}`)"
        )
    console.print(Text.assemble("results in ", (str(root), "bold")))
    if interrupted:
        return 130
    statuses = [r.get("status") for r in results.get("runs") or []]
    if statuses and all(s == "failed" for s in statuses):
        _error(f"every run failed; see {root}/runs/*/log.txt")
        return 1
    return 0


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="A run directory written by `optlab compare`."),
    force: bool = typer.Option(
        False, "--force", help="Resume even if the preset or optlab version differs from the checkpoints."
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="What to print on stdout at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Continue every unfinished run of a run directory from its last checkpoint."""
    from optlab.data.datasets import load_dataset
    from optlab.runs.resume import plan_resume
    from optlab.training.runner import resolve_device

    with user_errors():
        device = resolve_device(check_device(device))
        plan = plan_resume(run_dir, device, force=force)
        pending = [s.name for s in plan.specs if s.name not in plan.done]
        if not pending:
            sys.stderr.write(f"optlab: every run in {run_dir} has already ended; nothing to resume\n")
            from optlab.runs.store import load_results

            emit(load_results(run_dir), fmt)
            raise typer.Exit(0)
        resumed = ", ".join(
            f"{name} (from epoch {plan.states[name]['epoch']})" if name in plan.states else f"{name} (restart)"
            for name in pending
        )
        sys.stderr.write(f"optlab: resuming {resumed}\n")
        data = load_dataset(plan.loaded.preset.data, device)
    try:
        code = train(run_dir, plan.loaded, plan.specs, data, device, fmt, quiet, plan=plan)
    except KeyboardInterrupt:
        _leave_on_next_interrupt()
        sys.stderr.write("\noptlab: interrupted\n")
        code = 130
    raise typer.Exit(code)


# ---------------------------------------------------------------- presets


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


@presets_app.command("list")
def presets_list() -> None:
    """Every preset found: project (./presets), user, bundled. The first of a name wins."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from optlab.console.tables import print_table
    from optlab.errors import PresetError
    from optlab.preset.loader import preset_sources, read_toml

    table = Table(header_style="bold")
    for column in ("name", "source", "description"):
        table.add_column(column, no_wrap=column != "description")
    winners: dict[str, str] = {}
    seen_files: set[Path] = set()
    for source in preset_sources():
        real = source.path.resolve()
        if real in seen_files:  # the same file reached twice (e.g. ./presets in a checkout)
            continue
        seen_files.add(real)
        try:
            raw = read_toml(source.path)
            description = Text(first_sentence(str(raw.get("description", ""))))
        except PresetError as exc:
            description = Text.assemble(("unreadable: ", "red"), str(exc))
        origin = Text(source.origin)
        if source.name in winners:
            origin = Text(f"{source.origin} (shadowed by {winners[source.name]})", style="dim")
        else:
            winners[source.name] = source.origin
        table.add_row(Text(source.name), origin, description)
    if not winners:
        _stderr().print("no presets found")
        return
    print_table(Console(), table)


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="Preset name or path.")) -> None:
    """Print a preset's TOML text (stdout) and which file it came from (stderr)."""
    from optlab.preset.loader import find_preset, preset_sources

    with user_errors():
        path = find_preset(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OptlabError(f"{path}: cannot read ({exc})") from None
    origin = next((s.origin for s in preset_sources() if s.path == path), "file")
    real = path.resolve()
    others = [str(s.path) for s in preset_sources() if s.name == path.stem and s.path.resolve() != real]
    note = f" (shadows {', '.join(others)})" if others and origin != "file" else ""
    sys.stderr.write(f"optlab: {path} [{origin}]{note}\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@presets_app.command("validate")
def presets_validate(
    files: list[str] = typer.Argument(..., help="Preset files (or names) to check."),
) -> None:
    """Check each preset fully (schema, run resolution, optimizer arguments)."""
    from optlab.preset.loader import load_preset

    failed = 0
    for file in files:
        try:
            loaded = load_preset(file)
        except OptlabError as exc:
            failed += 1
            sys.stderr.write(f"error: {exc}\n")
            continue
        written, trained = len(loaded.preset.runs), len(loaded.resolved_runs())
        expanded = f", {trained} after sweeps and seeds" if trained != written else ""
        sys.stdout.write(f"ok: {file} ({written} runs{expanded})\n")
    if failed:
        raise typer.Exit(2)


@presets_app.command("schema")
def presets_schema() -> None:
    """Print the JSON Schema of a preset file."""
    from optlab.preset.schema import Preset

    sys.stdout.write(json.dumps(Preset.model_json_schema(), indent=2) + "\n")


# ---------------------------------------------------------------- runs and report


@app.command("runs")
def runs_list(
    directory: Path = typer.Option(Path("runs"), "--dir", help="Folder holding run directories."),
) -> None:
    """List run directories, newest first."""
    import time as _time
    from collections import Counter

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from optlab.console.tables import STATUS_STYLES, print_table
    from optlab.runs.reports import best_result, read_run_dir
    from optlab.runs.store import load_results

    dirs = (
        [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if directory.is_dir()
        else []
    )
    if not dirs:
        _stderr().print(f"no run directories in {directory}")
        return
    entries = []
    for path in dirs:
        started, row = path.stat().st_mtime, None
        with contextlib.suppress(Exception):  # a broken directory is listed as unreadable
            results = load_results(path) if (path / "results.json").is_file() else read_run_dir(path)[0]
            counts = Counter(str(r.get("status")) for r in results.get("runs") or [])
            statuses = Text(", ").join(
                Text(f"{n} {s}", style=STATUS_STYLES.get(s, "")) for s, n in counts.items()
            )
            row = (Text(str(results.get("preset", {}).get("name", "-"))), statuses, best_result(results))
            started = _time.mktime(_time.strptime(str(results["started_at"])[:19], "%Y-%m-%dT%H:%M:%S"))
        entries.append((started, path, row))
    table = Table(header_style="bold")
    for column in ("path", "preset", "date", "runs", "best"):
        table.add_column(column, no_wrap=column != "runs")
    for started, path, row in sorted(entries, key=lambda e: e[0], reverse=True):
        date = _time.strftime("%Y-%m-%d %H:%M", _time.localtime(started))
        preset, statuses, best = row or ("-", Text("unreadable", style="red"), "-")
        table.add_row(Text(str(path)), preset, date, statuses, best)
    print_table(Console(), table)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `optlab compare`."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="What to print on stdout."),
) -> None:
    """Rebuild a run directory's table, report.md and metrics.csv from what is on disk."""
    from optlab.runs.reports import read_run_dir, write_reports

    with user_errors():
        results, bad_lines = read_run_dir(run_dir)
        if bad_lines:
            _stderr().print(f"[yellow]skipped {len(bad_lines)} corrupt line(s) of events.jsonl[/]")
        try:
            write_reports(run_dir, results)
        except OSError as exc:
            raise OptlabError(f"{run_dir}: cannot write the reports ({exc.strerror or exc})") from None
    emit(results, fmt)


def run() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="optlab")
    except OptlabError as exc:
        _error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _leave_on_next_interrupt()
        sys.stderr.write("\noptlab: interrupted\n")
        sys.exit(130)
    finally:
        # Python puts back the default SIGINT action while it shuts down (unloading torch takes
        # a moment): a second Ctrl-C then would end the process by signal instead of with 130.
        if signal.getsignal(signal.SIGINT) is _exit_130:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


from optlab.cli.tui_commands import register as _register_tui  # noqa: E402

_register_tui(app)


from optlab.cli.preset_commands import register as _register_preset_commands  # noqa: E402 (needs presets_app)

_register_preset_commands(presets_app)
