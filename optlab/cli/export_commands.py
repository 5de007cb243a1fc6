"""`optlab export ...`: a run directory in other tools' formats (TensorBoard)."""

from __future__ import annotations

from pathlib import Path

import typer

from optlab.cli.common import stderr_console, user_errors

export_app = typer.Typer(help="Export a run directory to other tools.", no_args_is_help=True)


@export_app.command("tensorboard")
def tensorboard(
    run_dir: Path = typer.Argument(..., help="A run directory written by `optlab compare`."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Log directory (default: RUN_DIR/tensorboard)."),
) -> None:
    """One TensorBoard run per optlab run (needs the extra: pip install 'optlab[tensorboard]');
    then `tensorboard --logdir DIR`."""
    from optlab.runs.tensorboard_export import export_tensorboard

    with user_errors():
        folder = export_tensorboard(run_dir, out)
    stderr_console().print(f"TensorBoard logs in [bold]{folder}[/] (tensorboard --logdir {folder})")
    print(folder)
