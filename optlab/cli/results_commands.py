"""`optlab results schema`: the JSON Schema of results.json (optlab.runs.document)."""

from __future__ import annotations

import json
import sys

import typer

app = typer.Typer(help="The results document (results.json).", no_args_is_help=True)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of results.json (docs/results-schema.json holds the same)."""
    from optlab.runs.document import ResultsDocument

    sys.stdout.write(json.dumps(ResultsDocument.model_json_schema(), indent=2) + "\n")
