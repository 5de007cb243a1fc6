"""Everything a run directory shows people, written together after training (or by
`optlab report`): report.md and metrics.csv, and unless told not to, charts/*.svg and
report.html. Below the front ends, above the single writers (reports, charts, html)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optlab.errors import RunDirError
from optlab.runs.charts import CHART_DIR, DEFAULT_AXIS, render_charts
from optlab.runs.combine import SourceDoc, combine
from optlab.runs.files import atomic_write_text
from optlab.runs.html import to_html
from optlab.runs.owner import release
from optlab.runs.reports import to_csv, to_markdown
from optlab.runs.store import prepare_run_dir, read_events, write_results_json

REPORT_HTML = "report.html"


def render_reports(root: Path, results: dict[str, Any], charts: bool = True, axis: str = DEFAULT_AXIS) -> dict[str, str]:
    """The report files' texts by path relative to `root`, written nowhere: report.md and
    metrics.csv; with `charts`, charts/*.svg (from events.jsonl's per-step series, on the x
    `axis`: step, epoch, samples or time) and the self-contained report.html, and report.md
    embeds the charts."""
    files: dict[str, str] = {}
    names: list[str] = []
    if charts:
        events = read_events(root).events if (root / "events.jsonl").is_file() else []
        svgs = render_charts(results, events, axis)
        names = list(svgs)
        files.update({f"{CHART_DIR}/{name}": text for name, text in svgs.items()})
        files[REPORT_HTML] = to_html(results, svgs)
    files["report.md"] = to_markdown(results, names)
    files["metrics.csv"] = to_csv(results)
    return files


def write_reports(root: Path, results: dict[str, Any], charts: bool = True, axis: str = DEFAULT_AXIS) -> None:
    """Render every report file first, then write each atomically: a document that cannot be
    rendered leaves the directory as it was."""
    for name, text in render_reports(root, results, charts, axis).items():
        atomic_write_text(root / name, text)


__all__ = ["CHART_DIR", "REPORT_HTML", "read_sources", "render_reports", "write_combined", "write_reports"]


def read_sources(paths: list[Path]) -> list[SourceDoc]:
    """The results of each run directory, read (replayed from events.jsonl where it has one)
    and never written."""
    from optlab.runs.reports import read_run_dir_from

    return [SourceDoc(path, read_run_dir_from(path)[0]) for path in paths]


def write_combined(
    out: Path, sources: list[SourceDoc], force: bool = False, charts: bool = True, axis: str = DEFAULT_AXIS
) -> dict[str, Any]:
    """The comparison of several run directories into the new (or empty) directory `out`:
    results.json (with its `combined` section) and the reports; the sources are only read.
    NotComparable, before anything is written, where their fingerprints differ (unless `force`)."""
    doc = combine(sources, force)
    resolved = {s.path.resolve() for s in sources}
    if out.resolve() in resolved:
        raise RunDirError(f"{out}: is one of the run directories compared; --out must name a new directory")
    files = render_reports(out, doc, charts, axis)
    prepare_run_dir(out)
    try:
        write_results_json(out, doc)
        for name, text in files.items():
            atomic_write_text(out / name, text)
    except OSError as exc:
        raise RunDirError(f"{out}: cannot write the reports ({exc.strerror or exc})") from None
    finally:
        release(out)
    return doc
