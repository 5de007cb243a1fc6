"""`optlab plugins`: what the registries hold and where each entry came from."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer

from optlab.cli.common import Format, PluginsOption, load_plugins, user_errors

if TYPE_CHECKING:
    from optlab.registry import Registry


def plugins_document(reg: Registry) -> dict[str, object]:
    """Every registered name by kind, with its source and capabilities, and the installed
    entry-point plugins (loaded here, since listing them is asking for them)."""
    from optlab.registry import KINDS, entry_point_plugins

    return {
        "entry_points": [{"name": ep.name, "value": ep.value} for ep in entry_point_plugins()],
        "loaded": [{"ref": ref, **source.to_dict()} for ref, source in reg.plugins],
        **{
            f"{kind}s": [
                {"name": e.name, "source": e.source.to_dict(), "capabilities": sorted(e.capabilities)}
                for e in reg.entries(kind)
            ]
            for kind in KINDS
        },
        "unavailable": {f"{kind}s": dict(reg.missing[kind]) for kind in KINDS if reg.missing[kind]},
    }


app = typer.Typer()  # `plugins`, added to the `optlab` command as it is


@app.command("plugins")
def plugins(
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table or json."),
    refs: PluginsOption = None,
) -> None:
    """List the optimizers, schedulers, models and datasets available, and where each comes from."""
    from optlab.registry import ENTRY_POINT_GROUP, KINDS, entry_point_plugins, registry

    with user_errors():
        load_plugins(refs)
        doc = plugins_document(registry())
    if fmt is Format.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    reg = registry()
    table = Table(title="optlab plugins", title_justify="left")
    for column in ("kind", "name", "from", "capabilities"):
        table.add_column(column)
    for kind in KINDS:
        for entry in reg.entries(kind):
            table.add_row(kind, entry.name, entry.source.describe(), ", ".join(sorted(entry.capabilities)))
        for name, what in reg.missing[kind].items():
            table.add_row(kind, name, f"[dim]needs {what}[/]", "")
    console = Console()
    console.print(table)
    found = ", ".join(ep.name for ep in entry_point_plugins()) or "none"
    console.print(f"entry points ({ENTRY_POINT_GROUP}): {found}")

