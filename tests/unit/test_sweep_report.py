"""report.md and report.html of a sweep lead with the sweep view: its chart (one line per
group, metric against the swept value) and the per-group table, then every run."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sweep_fixtures import OPTIMIZERS, write_sweep_dir

from optlab.runs.publish import render_reports
from optlab.runs.sweep import sweep_view


def test_reports_of_an_8x8_sweep_lead_with_the_sweep(tmp_path: Path) -> None:
    run_dir = write_sweep_dir(tmp_path / "run", optimizers=OPTIMIZERS, lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2,
                                                                            1e-1, 3e-1), diverge_at=3e-1)
    results = json.loads((run_dir / "results.json").read_text())
    files = render_reports(run_dir, results)
    svg = files["charts/sweep.svg"]
    # one line per optimizer, not one per run; ticks at the swept learning rates
    assert sorted(re.findall(r'data-series="([^"]+)"', svg)) == sorted(OPTIMIZERS)
    assert ">1e-4<" in svg and ">3e-1<" in svg and "learning rate (log scale)" in svg
    assert "every seed diverged" in svg  # lr 3e-1 diverged for every optimizer
    md = files["report.md"]
    assert md.index("## Sweep: best validation accuracy by learning rate") < md.index("![sweep](charts/sweep.svg)")
    assert md.index("![sweep]") < md.index("## Every run") < md.index("![loss](charts/loss.svg)") < md.index("## Runs")
    view = sweep_view(results)
    assert view is not None
    table = md[md.index("| group |"):md.index("## Every run")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "group" not in line]
    assert len(rows) == 8 and rows[0].startswith("| sgd | **")  # sgd's peak is the highest
    assert "| 1e-1 |" in rows[0] and rows[0].rstrip().endswith("| 8/8 | 1 |")  # its best lr; 1 diverged
    html = files["report.html"]
    assert html.index('<h2 id="sweep">') < html.index('<figure id="chart-sweep">') < html.index("<h2>Charts</h2>")
    assert html.count('<figure id="chart-sweep">') == 1  # not repeated among the other charts
    assert html[html.index('<table id="sweep-groups">'):].split("</table>")[0].count("<tr>") == 9


def test_reports_without_a_sweep_have_no_sweep_section(tmp_path: Path) -> None:
    run_dir = write_sweep_dir(tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text())
    results["preset"].pop("sweep")
    files = render_reports(run_dir, results)
    assert "charts/sweep.svg" not in files and "## Sweep" not in files["report.md"]
    assert 'id="sweep"' not in files["report.html"]
