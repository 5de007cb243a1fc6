"""`optlab runs` and `optlab report`: read run directories back from disk."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from rich.text import Text

from optlab.cli.common import ChartAxis, Format, check_html_format, emit, stderr_console, user_errors
from optlab.errors import OptlabError


def _liveness(path: Path) -> Text:
    """Runs recorded as running are live only while their process is."""
    from optlab.runs.owner import read_owner

    owner = read_owner(path)
    if owner is None or owner.alive is False:
        return Text(" (not training: optlab resume)", style="yellow")
    return Text(" (live)" if owner.alive else f" (on {owner.host})", style="green")


def _lr_find_row(path: Path) -> tuple[Text, Text, str]:
    """An `optlab lr-find` directory: its preset, how many runs got a suggestion."""
    import json

    doc = json.loads((path / "lr_find.json").read_text(encoding="utf-8"))
    runs = doc.get("runs") or []
    suggested = sum(1 for r in runs if r.get("suggestion") is not None)
    return Text(str(doc.get("preset", "-"))), Text(f"lr-find: {suggested} of {len(runs)} suggested"), "-"


app = typer.Typer()  # `runs` and `report`, added to the `optlab` command as they are


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

    from optlab.console.tables import print_table
    from optlab.runs.command_line import read_overrides
    from optlab.runs.palette import STATUS_STYLES
    from optlab.runs.reports import best_result, read_run_dir
    from optlab.runs.store import load_results

    dirs = (
        [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if directory.is_dir()
        else []
    )
    if not dirs:
        stderr_console().print(f"no run directories in {directory}")
        return
    entries: list[tuple[float, Path, tuple[Text, Text, str] | None]] = []  # row None: unreadable
    for path in dirs:
        started, row = path.stat().st_mtime, None
        with contextlib.suppress(Exception):  # a broken directory is listed as unreadable
            if (path / "lr_find.json").is_file() and not (path / "events.jsonl").exists():
                row = _lr_find_row(path)
                entries.append((started, path, row))
                continue
            results = load_results(path) if (path / "results.json").is_file() else read_run_dir(path)[0]
            counts = Counter(str(r.get("status")) for r in results.get("runs") or [])
            statuses = Text(", ").join(
                Text(f"{n} {s}", style=STATUS_STYLES.get(s, "")) for s, n in counts.items()
            )
            if "running" in counts:
                statuses.append(_liveness(path))
            row = (Text(str(results.get("preset", {}).get("name", "-"))), statuses, best_result(results))
            started = _time.mktime(_time.strptime(str(results["started_at"])[:19], "%Y-%m-%dT%H:%M:%S"))
        entries.append((started, path, row))
    table = Table(header_style="bold")
    # What --set and --seeds changed: two directories of one preset can differ only there.
    given = {path: " ".join(read_overrides(path)) for _, path, _ in entries}
    columns = ("path", "preset", "date", "runs", "best", *(("overrides",) if any(given.values()) else ()))
    for column in columns:
        table.add_column(column, no_wrap=column not in ("runs", "overrides"))
    for started, path, row in sorted(entries, key=lambda e: e[0], reverse=True):
        date = _time.strftime("%Y-%m-%d %H:%M", _time.localtime(started))
        preset, statuses, best = row or ("-", Text("unreadable", style="red"), "-")
        overrides = [Text(given[path] or "-")] if "overrides" in columns else []
        table.add_row(Text(str(path)), preset, date, statuses, best, *overrides)
    print_table(Console(), table)


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(
        ..., help="A run directory written by `optlab compare`; several, with --out, to compare them."
    ),
    fmt: Format = typer.Option(
        Format.table, "--format", "-f", help="What to print on stdout (html: the path of report.html)."
    ),
    no_charts: bool = typer.Option(False, "--no-charts", help="Skip charts/*.svg and report.html."),
    x_axis: ChartAxis = typer.Option(
        ChartAxis.samples, "--x-axis", help="The charts' x axis (samples seen compares batch sizes fairly)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Several run directories: the new directory of their comparison."
    ),
    force: bool = typer.Option(
        False, "--force", help="Several run directories: compare them even where their fingerprints differ (marked)."
    ),
) -> None:
    """Rebuild a run directory's results.json, report.md, metrics.csv, charts/*.svg and
    report.html (and its table) from events.jsonl; or, given several and --out, compare the
    experiments they hold in one new report (refused where they are not comparable)."""
    with user_errors():
        check_html_format(fmt, no_charts)
        if len(run_dirs) > 1 or out is not None:
            _report_combined(run_dirs, out, force, fmt, no_charts, x_axis)
        else:
            _report_one(run_dirs[0], fmt, no_charts, x_axis)


def _report_combined(
    run_dirs: list[Path], out: Path | None, force: bool, fmt: Format, no_charts: bool, x_axis: ChartAxis
) -> None:
    from optlab.runs.publish import read_sources, write_combined

    if out is None:
        raise OptlabError("comparing several run directories writes a new one: give it with --out DIR")
    if len(run_dirs) < 2:
        raise OptlabError("--out compares several run directories: name at least two")
    results = write_combined(out, read_sources(run_dirs), force=force, charts=not no_charts, axis=x_axis.value)
    emit(results, fmt, out)
    stderr_console().print(f"comparison in [bold]{out}[/]")


def _report_one(run_dir: Path, fmt: Format, no_charts: bool, x_axis: ChartAxis) -> None:
    from optlab.runs.files import atomic_write_text
    from optlab.runs.publish import render_reports
    from optlab.runs.reports import read_run_dir_from
    from optlab.runs.store import write_results_json

    results, bad_lines, source = read_run_dir_from(run_dir)
    if bad_lines:
        stderr_console().print(f"[yellow]skipped {len(bad_lines)} corrupt line(s) of events.jsonl[/]")
    try:
        files = render_reports(run_dir, results, charts=not no_charts, axis=x_axis.value)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        if source == "events":
            raise  # optlab's own record: a bug of ours, worth its traceback
        # A results.json of the right outline but foreign contents: refused before
        # anything is written.
        raise OptlabError(
            f"{run_dir / 'results.json'}: not a results document optlab can report "
            f"({type(exc).__name__}: {exc})"
        ) from None
    try:
        if source == "events":
            # Replayed from the events, so a missing or corrupt results.json is whole
            # again (atomically: a live writer's own rewrite never meets half a file).
            # A results.json without events is someone's file: read, never rewritten.
            write_results_json(run_dir, results)
        for name, text in files.items():
            atomic_write_text(run_dir / name, text)
    except OSError as exc:
        raise OptlabError(f"{run_dir}: cannot write the reports ({exc.strerror or exc})") from None
    emit(results, fmt, run_dir)
