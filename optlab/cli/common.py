"""What every `optlab` command shares: the output formats, one-line errors with their exit
codes, the device check and the resolved preset as TOML."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from optlab.cli import help_types  # noqa: F401  (flags without `<bool>` in every --help)
from optlab.cli.completion import complete_plugin
from optlab.errors import OptlabError

# `--plugin`, declared once for every command that trains or validates: code runs only when the
# user names it here (or installs a package with an `optlab.plugins` entry point), never
# because a preset says so.
PluginsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="MODULE_OR_FILE.py",
        help="Load optimizers, models or datasets from a plugin module or .py file (repeatable).",
        autocompletion=complete_plugin,
    ),
]


def load_plugins(refs: list[str] | None) -> None:
    """Load each `--plugin` into the process-wide registries (a bad one: exit 2, one line)."""
    if refs:
        from optlab.registry import load_plugins as load

        load(refs)


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"
    html = "html"  # the path of the run directory's report.html


class ChartAxis(StrEnum):
    """The x axes of the report's charts (optlab.runs.series.X_AXES)."""

    step = "step"
    epoch = "epoch"
    samples = "samples"
    time = "time"


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_error(message: str) -> None:
    sys.stderr.write(f"optlab: error: {message}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """An OptlabError becomes one message on stderr and its exit code, never a traceback."""
    try:
        yield
    except OptlabError as exc:
        print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None


def emit(results: dict[str, Any], fmt: Format, root: Path | None = None) -> None:
    """Write a results document to stdout in the chosen format (and nothing else to stdout);
    `html` prints the path of `root`'s report.html instead."""
    from optlab.runs.reports import to_csv, to_json, to_markdown

    if fmt is Format.html:
        from optlab.runs.publish import REPORT_HTML

        if root is None or not (root / REPORT_HTML).is_file():
            raise OptlabError(f"--format html: {root} has no {REPORT_HTML} (it is written unless --no-charts)")
        sys.stdout.write(f"{root / REPORT_HTML}\n")
        sys.stdout.flush()
        return
    if fmt is Format.table:
        from rich.console import Console

        from optlab.console.tables import print_results

        print_results(Console(), results)
        return
    if fmt is Format.markdown and root is not None and (root / "report.md").is_file():
        # The run directory's report.md, just written from these results: with its chart links.
        text = (root / "report.md").read_text(encoding="utf-8")
    else:
        text = {Format.json: to_json, Format.markdown: to_markdown, Format.csv: to_csv}[fmt](results)
    sys.stdout.write(text)
    sys.stdout.flush()


def check_html_format(fmt: Format, no_charts: bool) -> None:
    if fmt is Format.html and no_charts:
        raise OptlabError("--format html prints the path of report.html, which --no-charts skips: use one of them")


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


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def leave(exit: SystemExit) -> NoReturn:
    """End the process as `exit` would, without tearing the interpreter down where torch is
    loaded: unloading torch and its compiler front end (which torch.optim imports) took 1 to 3
    s of every command's wall time and writes nothing. What a normal exit does that matters
    still happens first: other non-daemon threads are waited for, the atexit hooks run (Ray's
    shutdown, unused workers told to exit, logging's flush), stdout and stderr are flushed.
    Every file optlab writes is closed by its own code before this."""
    code = exit.code
    if "torch" not in sys.modules:
        raise exit
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code or 0)
