"""`optlab presets ...` (list, show, validate, schema, new, export), and the confirmation
`compare` asks before running a preset fetched from a URL.

`optlab.cli.main` adds this module's `app` to its command line as the `presets` group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from optlab.cli.common import (
    PluginsOption,
    first_sentence,
    load_plugins,
    preset_toml,
    stderr_console,
    user_errors,
)
from optlab.cli.completion import complete_preset
from optlab.errors import OptlabError, PresetError
from optlab.preset.export import export_text
from optlab.preset.names import preset_name_error

TEMPLATE = '''# {name}: a preset for `optlab compare {name}`. Reference: docs/presets.md
name = "{name}"
description = """Describe what this experiment shows."""

[data]
dataset = "digits"          # digits, breast-cancer, diabetes, mnist, fashion-mnist, cifar10
val_fraction = 0.2

[model]
name = "mlp"
hidden = [128]

[train]
epochs = 10
batch_size = 64
seed = 0
# seeds = [0, 1, 2]        # repeat every run once per seed (mean ± std in the results)

[[runs]]
name = "sgd-momentum"
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}

[[runs]]
name = "adam"
optimizer = {{ name = "adam", lr = 1e-3 }}

# [sweep]                   # expand every run over a grid, e.g. adam-lr1e-2-bs128
# "optimizer.lr" = [1e-3, 1e-2]
# batch_size = [32, 128]
'''


def _write_new(path: Path, text: str) -> None:
    """Create `path` with `text`; an existing file is never overwritten."""
    if path.exists():
        raise OptlabError(
            f"{path}: already exists; refusing to overwrite it (choose another name or -o FILE)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:  # "x": fails if it appeared meanwhile
            fh.write(text)
    except FileExistsError:
        raise OptlabError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise OptlabError(f"{path}: cannot write ({exc.strerror or exc})") from None


def new_preset_text(name: str, source: str | None) -> str:
    """A starter preset: the template, or `source` with `extends` followed and the new name."""
    if source is None:
        return TEMPLATE.format(name=name)
    import tomli_w

    from optlab.preset.loader import load_preset

    loaded = load_preset(source)
    raw = {k: v for k, v in loaded.raw.items() if k != "extends"}
    raw["name"] = name
    return f"# {name}: started from preset {source!r} ({loaded.origin}). Reference: docs/presets.md\n" + (
        tomli_w.dumps(raw)
    )


# ---------------------------------------------------------------- compare: presets from URLs


def stdin_interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def confirm_remote(loaded: Any, yes: bool) -> None:
    """Show the resolved runs of a preset fetched from a URL and ask before anything starts."""
    if getattr(loaded, "url", None) is None:
        return
    from rich.console import Console
    from rich.table import Table

    from optlab.console.tables import print_table
    from optlab.runs.reports import config_summary

    runs = loaded.resolved_runs()
    console = Console(stderr=True, highlight=False)
    table = Table(title=f"{len(runs)} run(s) from {loaded.url}", header_style="bold")
    for column in ("run", "seed", "configuration"):
        table.add_column(column, no_wrap=column != "configuration")
    for run in runs:
        table.add_row(run.name, str(run.seed), config_summary(run.model_dump(mode="json")))
    print_table(console, table)
    console.print(f"dataset {loaded.preset.data.dataset}, model {loaded.preset.model.name}")
    if yes:
        return
    if not stdin_interactive():
        raise PresetError(
            f"{loaded.url}: a preset from a URL runs only after confirmation, and stdin is not "
            "interactive; check the runs above and pass --yes"
        )
    if not typer.confirm(f"Run these {len(runs)} run(s)?", default=False, err=True):
        sys.stderr.write("optlab: not started\n")
        raise typer.Exit(1)


# ---------------------------------------------------------------- commands


app = typer.Typer(help="List, show, validate presets and print their JSON Schema.", no_args_is_help=True)


@app.command("list")
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
        stderr_console().print("no presets found")
        return
    print_table(Console(), table)


@app.command("show")
def presets_show(
    name: str = typer.Argument(..., help="Preset name, path or http(s) URL."),
    resolved: bool = typer.Option(
        False, "--resolved", "-r", help="Print it resolved: extends followed, --set applied, defaults filled in."
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", "-s", metavar="KEY=VALUE", help="Override a field (with --resolved)."
    ),
) -> None:
    """Print a preset's TOML (stdout) and which file or URL it came from (stderr)."""
    from optlab.preset.fetch import fetch_text, is_url
    from optlab.preset.loader import find_preset, load_preset, preset_sources

    with user_errors():
        if resolved or overrides:
            loaded = load_preset(name, overrides or [])
            sys.stderr.write(f"optlab: {loaded.origin} resolved, {len(loaded.resolved_runs())} run(s)\n")
            sys.stdout.write(preset_toml(loaded.preset))
            return
        if is_url(name):
            text = fetch_text(name)
            sys.stderr.write(f"optlab: {name} [url]\n")
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return
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


@app.command("validate")
def presets_validate(
    files: list[str] = typer.Argument(..., help="Preset files (or names) to check.", autocompletion=complete_preset),
    plugins: PluginsOption = None,
) -> None:
    """Check each preset fully (schema, run resolution, optimizer arguments)."""
    from optlab.preset.loader import load_preset

    with user_errors():
        load_plugins(plugins)
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
        for note in loaded.notes:  # optional runs left out, sweeps of multiplier learning rates
            sys.stderr.write(f"note: {note}\n")
    if failed:
        raise typer.Exit(2)


@app.command("schema")
def presets_schema(plugins: PluginsOption = None) -> None:
    """Print the JSON Schema of a preset file (with the names the registries know here)."""
    from optlab.preset.schema import json_schema

    with user_errors():
        load_plugins(plugins)
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command("new")
def presets_new(
    name: str = typer.Argument(..., help="Name of the new preset (letters, digits, - _ . +)."),
    source: str | None = typer.Option(None, "--from", help="Start from this preset (name, path or URL)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: ./presets/NAME.toml)."
    ),
) -> None:
    """Write a new preset file to start from; never overwrites a file."""
    with user_errors():
        problem = preset_name_error(name)  # the rule the preset file's `name` must follow
        if problem:
            raise OptlabError(f"preset name {name!r}: {problem}")
        path = output if output is not None else Path("presets") / f"{name}.toml"
        _write_new(path, new_preset_text(name, source))
    sys.stderr.write(f"optlab: wrote {path}; run it with: optlab compare {path}\n")


@app.command("export")
def presets_export(
    run_dir: Path = typer.Argument(..., help="A run directory written by `optlab compare`."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
) -> None:
    """Print (or write) the exact preset that produced a run directory, seeds and versions included."""
    with user_errors():
        text = export_text(run_dir)  # optlab.preset.export: the TUI's save key shares it
        if output is not None:
            _write_new(output, text)
    if output is None:
        sys.stdout.write(text)
    else:
        sys.stderr.write(f"optlab: wrote {output}; reproduce with: optlab compare {output}\n")
