"""Everything a run directory shows people, written together after training (or by
`optlab report`): report.md and metrics.csv, and unless told not to, charts/*.svg and
report.html. Below the front ends, above the single writers (reports, charts, html)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optlab.runs.charts import CHART_DIR, DEFAULT_AXIS, write_charts
from optlab.runs.files import atomic_write_text
from optlab.runs.html import to_html
from optlab.runs.reports import to_csv, to_markdown
from optlab.runs.store import read_events

REPORT_HTML = "report.html"


def write_reports(root: Path, results: dict[str, Any], charts: bool = True, axis: str = DEFAULT_AXIS) -> None:
    """report.md and metrics.csv; with `charts`, charts/*.svg (from events.jsonl's per-step
    series, on the x `axis`: step, epoch, samples or time) and the self-contained report.html,
    and report.md embeds the charts."""
    names: list[str] = []
    if charts:
        events = read_events(root).events if (root / "events.jsonl").is_file() else []
        svgs = write_charts(root, results, events, axis)
        names = list(svgs)
        atomic_write_text(root / REPORT_HTML, to_html(results, svgs))
    atomic_write_text(root / "report.md", to_markdown(results, names))
    atomic_write_text(root / "metrics.csv", to_csv(results))


__all__ = ["CHART_DIR", "REPORT_HTML", "write_reports"]
