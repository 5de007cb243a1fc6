"""`optlab lr-find`: the LR range test of a preset's runs, its record, table, chart and preset.

Heavy modules are imported inside the command, as in `compare`."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from optlab.cli.backend import DEFAULT, ThreadsOption
from optlab.cli.common import (
    PluginsOption,
    check_device,
    load_plugins,
    stderr_console,
    user_errors,
)
from optlab.cli.completion import complete_preset, complete_set
from optlab.errors import OptlabError

if TYPE_CHECKING:

    from optlab.preset.loader import LoadedPreset


class LrFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def _write_preset(path: Path, ref: str, overrides: list[str], runs: list[dict[str, Any]]) -> None:
    from optlab.preset.loader import load_preset
    from optlab.preset.lr_write import preset_with_lrs, write_new_preset

    raw = load_preset(ref, overrides).raw  # without --seeds: the copy keeps the preset's own
    readings = {
        r["name"]: (r["suggestion"], "; ".join(r["notes"]) or "no clear descent") for r in runs
    }
    write_new_preset(path, preset_with_lrs(raw, {r["name"]: r["optimizer"] for r in runs}, readings))


app = typer.Typer()  # `lr-find`, added to the `optlab` command as it is


@app.command("lr-find")
def lr_find(
    preset: str = typer.Argument(
        "quickstart", help="Preset name, path to a preset TOML file, or http(s) URL.", autocompletion=complete_preset
    ),
    runs: list[str] | None = typer.Option(None, "--run", "-r", help="Test only this run (repeatable)."),
    start: float = typer.Option(1e-7, "--start", help="First learning rate."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate."),
    steps: int = typer.Option(100, "--steps", help="Steps (points) from --start to --end, at least 10."),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Repeat every test over seeds 0..N-1."),
    loss: str = typer.Option("train", "--loss", help="train (the batch's loss) or val (the validation loss)."),
    stop_factor: float = typer.Option(
        4.0, "--stop-factor", help="Stop when the smoothed loss exceeds this many times its best (0: never)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: runs/DATE-PRESET-lrfind)."),
    fmt: LrFormat = typer.Option(LrFormat.table, "--format", "-f", help="What to print on stdout."),
    write_preset: Path | None = typer.Option(
        None, "--write-preset", help="Write a copy of the preset with the suggested learning rates (never overwrites)."
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", "-s", metavar="KEY=VALUE", help="Override a preset field, e.g. train.batch_size=32 (repeatable).",
        autocompletion=complete_set,
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a preset from a URL without asking."),
    plugins: PluginsOption = None,
    threads: ThreadsOption = DEFAULT.threads,
) -> None:
    """Find each run's learning rate with an LR range test (the curve, a suggestion and how sure it is)."""
    from optlab.cli.preset_commands import confirm_remote
    from optlab.preset.loader import load_preset
    from optlab.runs.lr_find_report import to_json, to_markdown
    from optlab.runs.lr_find_run import lr_find_into, select_groups
    from optlab.runs.store import default_run_dir, prepare_run_dir
    from optlab.training.lr_find import RangeTestSettings, check_optimizer
    from optlab.training.runner import resolve_device
    from optlab.training.threads import use_threads

    with user_errors():
        load_plugins(plugins)
        if loss not in ("train", "val"):
            raise OptlabError(f"--loss {loss!r}: expected train or val")
        settings = RangeTestSettings(start=start, end=end, steps=steps, loss=loss, stop_factor=stop_factor)  # type: ignore[arg-type]
        settings.check()
        if write_preset is not None and write_preset.exists():
            raise OptlabError(f"--write-preset {write_preset}: the file exists; choose a new name")
        loaded: LoadedPreset = load_preset(preset, overrides or [], seeds=seeds)
        confirm_remote(loaded, yes)
        device = resolve_device(check_device(device))
        use_threads(threads)  # the same default as compare's: a range test's floats follow it too
        groups = select_groups(loaded.resolved_runs(device), runs or [])
        for members in groups.values():
            check_optimizer(members[0])  # refuse before any data is loaded or directory made
        root = out if out is not None else default_run_dir(f"{loaded.preset.name}-lrfind")
        created = [p for p in (root, *root.parents) if not p.exists()]
        prepare_run_dir(root)
        doc = lr_find_into(root, loaded, groups, device, settings, quiet, created)
        entries = doc["runs"]
        if write_preset is not None:
            _write_preset(write_preset, preset, overrides or [], entries)

    if fmt is LrFormat.json:
        sys.stdout.write(to_json(doc))
    elif fmt is LrFormat.markdown:
        sys.stdout.write(to_markdown(doc))
    else:
        from rich.console import Console

        from optlab.cli.lr_find_view import print_lr_find

        print_lr_find(Console(), doc)
    console = stderr_console()
    console.print(f"lr-find results in [bold]{root}[/]")
    if write_preset is not None:
        console.print(f"preset with the suggested learning rates: [bold]{write_preset}[/]")

