"""The reports' charts and HTML page: from hand-made events (a diverging run's spike) and from a
real short seeded experiment (SVG structure, byte-stable renders, links, the HTML's numbers)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from optlab.runs.charts import loss_figure, lr_figure, render_charts
from optlab.runs.formatting import format_value
from optlab.runs.seed_reports import compact_mean_std
from optlab.runs.series import ChartData
from optlab.runs.store import read_events
from optlab.runs.svg import line_chart
from optlab.training.events import EpochEnded, Progress, RunStarted

SVG = "{http://www.w3.org/2000/svg}"
PRESET = """name = "charts"
target = { metric = "val_accuracy", value = 0.3 }
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
seed = 0
log_every = 2
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.1 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 0.01 }
"""


def _optlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optlab", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two configurations over two seeds, with a target: every chart and section is written."""
    base = tmp_path_factory.mktemp("charts")
    (base / "charts.toml").write_text(PRESET)
    out = base / "run"
    done = _optlab("compare", str(base / "charts.toml"), "--seeds", "2", "--out", str(out), "-q", "-f", "json")
    assert done.returncode == 0, done.stderr
    return out


def _numbers(root: ET.Element) -> list[float]:
    """Every number of every coordinate attribute and path."""
    values = []
    for el in root.iter():
        for key in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "d"):
            if key in el.attrib:
                values += [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", el.attrib[key])]
    return values


def _series(root: ET.Element) -> list[str]:
    return [el.attrib["data-series"] for el in root.iter() if "data-series" in el.attrib]


def _texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def test_every_chart_parses_with_one_series_per_group_finite_coordinates_and_labels(seeded: Path) -> None:
    charts = sorted(p.name for p in (seeded / "charts").iterdir())
    assert charts == ["loss.svg", "lr.svg", "test_metrics.svg", "time_to_target.svg", "val_metric.svg"]
    for name in charts:
        root = ET.parse(seeded / "charts" / name).getroot()
        assert root.tag == f"{SVG}svg"
        # Seeds: one series per configuration (its mean and bands), named as the legend names it.
        # (time to target: only configurations that reached it have dots)
        if name == "time_to_target.svg":
            assert set(_series(root)) <= {"adam", "sgd"} and {"adam", "sgd"} <= set(_texts(root)), name
        else:
            assert sorted(_series(root)) == ["adam", "sgd"], name
        numbers = _numbers(root)
        assert numbers and all(math.isfinite(v) for v in numbers), name
        texts = _texts(root)
        assert texts[0].strip(), name  # the title
    loss_texts = _texts(ET.parse(seeded / "charts" / "loss.svg").getroot())
    assert "samples seen" in loss_texts and "loss" in loss_texts  # x axis by samples seen by default
    assert "learning rate" in _texts(ET.parse(seeded / "charts" / "lr.svg").getroot())
    assert "test accuracy" in _texts(ET.parse(seeded / "charts" / "test_metrics.svg").getroot())
    # Bands: a ±std and a min–max area per configuration that varies across seeds.
    loss = ET.parse(seeded / "charts" / "loss.svg").getroot()
    assert len([p for p in loss.iter(f"{SVG}path") if p.attrib.get("fill", "none") != "none"]) >= 2


def test_renders_are_byte_identical_and_markdown_links_resolve(seeded: Path) -> None:
    doc = json.loads((seeded / "results.json").read_text())
    events = read_events(seeded).events
    assert render_charts(doc, events) == render_charts(doc, events)
    before = {p.name: p.read_bytes() for p in (seeded / "charts").iterdir()}
    done = _optlab("report", str(seeded), "-f", "json")
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in (seeded / "charts").iterdir()} == before
    report = (seeded / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(Path(link).name for link in links) == sorted(before)
    assert all((seeded / link).is_file() for link in links)
    assert report.index("](charts/loss.svg)") < report.index("| run |")  # the charts come first


def test_html_is_self_contained_and_its_ranking_numbers_are_the_results(seeded: Path) -> None:
    html = (seeded / "report.html").read_text()
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert html.count("<svg") == 5 and "<style>" in html
    results = json.loads((seeded / "results.json").read_text())
    runs = {r["name"]: r for r in results["runs"]}
    # With seeds the ranking table holds the configurations (mean ± std, rank marks) and the
    # runs table each seed run: every number in both is the one results.json holds.
    ranking = _html_table(html, "ranking")
    groups = {g["group"]: g for g in results["aggregates"]["groups"]}
    ranks = {r["group"]: r for r in results["aggregates"]["ranking"]["ranks"]}
    assert [row["configuration"] for row in ranking] == results["aggregates"]["ranking"]["order"]
    for row in ranking:
        group = groups[row["configuration"]]
        assert row["rank"] == str(ranks[group["group"]].get("label") or ranks[group["group"]]["rank"])
        assert row["n"] == str(group["n"])
        for column in ("accuracy", "f1", "test_loss", "wall_time_s"):
            stat = group["wall_time_s"] if column == "wall_time_s" else group["test"]["loss" if column == "test_loss" else column]
            assert row[column] == compact_mean_std(stat, column), (group["group"], column)
    table = _html_table(html, "runs")
    assert len(table) == len(runs)
    checked = 0
    for row in table:
        name = row["run"]
        for column, text in row.items():
            if column in ("run", "status"):
                continue
            key = {"test_loss": "loss"}.get(column, column)
            value = runs[name]["test"].get(key) if key in runs[name]["test"] else runs[name].get(
                {"samples_per_s": "train_samples_per_s"}.get(column, column))
            assert text == format_value(column, value), (name, column)
            checked += 1
    assert checked >= 4 * len(runs)
    assert "Confusion matrix" in html and "Fairness" in html and 'id="fingerprints"' in html and "Time to target" in html


def _html_table(html: str, table_id: str) -> list[dict[str, str]]:
    """The rows of the table with this id, as {column: cell text} (numbers by data-column)."""
    start = html.index(f'<table id="{table_id}"')
    table = html[start: html.index("</table>", start)]
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", row)
        out = {}
        for head, (attrs, content) in zip(heads, cells, strict=True):
            column = re.search(r'data-column="([a-z_]+)"', attrs)
            text = re.sub(r"<[^>]+>", "", content)
            out[column.group(1) if column and column.group(1) != "name" else head] = text
        rows.append(out)
    return rows


def test_report_format_html_prints_the_path_and_no_charts_skips_them(seeded: Path, tmp_path: Path) -> None:
    done = _optlab("report", str(seeded), "--format", "html")
    assert done.returncode == 0 and done.stdout.strip() == str(seeded / "report.html")
    bad = _optlab("report", str(seeded), "--format", "html", "--no-charts")
    assert bad.returncode == 2 and "--no-charts" in bad.stderr and "Traceback" not in bad.stderr


def _events(losses: dict[str, list[float]]) -> tuple[dict[str, Any], list[Any]]:
    doc = {"runs": [{"name": n, "config": {"group": n}} for n in losses], "dataset": {"task": "multiclass"}}
    events: list[Any] = []
    for name, values in losses.items():
        events.append(RunStarted(run=name, steps_per_epoch=len(values), total_steps=len(values)))
        for step, loss in enumerate(values, start=1):
            events.append(Progress(run=name, step=step, samples_seen=32 * step, train_loss=loss,
                                   lr=0.1 if name != "big" else 10.0, elapsed_s=0.1 * step))
        events.append(EpochEnded(run=name, epoch=1, step=len(values), samples_seen=32 * len(values),
                                 train_loss=values[-1], val_loss=values[-1], val_accuracy=0.5, lr=0.1))
    return doc, events


def _ys(svg: str, series: str) -> list[float]:
    root = ET.fromstring(svg)
    (path,) = [p for p in root.iter(f"{SVG}path") if p.attrib.get("data-series") == series]
    return [float(y) for y in re.findall(r"-?\d+(?:\.\d+)?\s+(-?\d+(?:\.\d+)?)", path.attrib["d"])]


def test_a_diverging_run_does_not_squash_the_others() -> None:
    healthy = [2.3 * 0.9**i for i in range(40)]
    doc, events = _events({"a": healthy, "b": [v * 1.2 for v in healthy], "boom": healthy[:30] + [1e4, 1e12, 1e30]})
    svg = line_chart(loss_figure(ChartData.from_events(doc, events)))
    for name in ("a", "b"):
        ys = _ys(svg, name)
        assert max(ys) - min(ys) > 150  # of a 300 px plot: the curve keeps its shape
    assert "above the scale" in svg
    assert all(math.isfinite(v) for v in _numbers(ET.fromstring(svg)))


def test_learning_rates_spanning_decades_go_log() -> None:
    doc, events = _events({"a": [1.0] * 5, "big": [1.0] * 5})
    data = ChartData.from_events(doc, events)
    assert lr_figure(data).log_y  # 0.1 and 10: two decades
    doc, events = _events({"a": [1.0] * 5, "b": [1.0] * 5})
    assert not lr_figure(ChartData.from_events(doc, events)).log_y


def test_a_run_has_one_colour_in_the_console_the_html_and_the_charts() -> None:
    from optlab.console.tables import results_table
    from optlab.runs.html import to_html
    from optlab.runs.palette import hex_color, rich_color, run_color

    doc, events = _events({"a": [1.0, 0.5], "b": [1.0, 0.6], "c": [1.0, 0.7]})
    for run in doc["runs"]:
        run.update(status="finished", test={"accuracy": 0.9, "loss": 0.3})
    svg = ET.fromstring(line_chart(loss_figure(ChartData.from_events(doc, events))))
    strokes = {p.attrib["data-series"]: p.attrib["stroke"] for p in svg.iter(f"{SVG}path") if "data-series" in p.attrib}
    names = [str(cell) for cell in results_table(doc).columns[0]._cells]
    styles = [str(cell.style) for cell in results_table(doc).columns[0]._cells]
    html = to_html(doc, {})
    for i, name in enumerate(["a", "b", "c"]):
        assert strokes[name] == hex_color(run_color(i))
        assert names[i] == name and rich_color(run_color(i)) in styles[i]
        assert f'background:{hex_color(run_color(i))}"></span>{name}<' in html


def test_sixty_four_runs_fold_their_legend_into_rows_inside_the_chart() -> None:
    doc, events = _events({f"run-{i:02d}-with-a-longish-name": [2.0 - 0.01 * i, 1.0] for i in range(64)})
    svg = line_chart(loss_figure(ChartData.from_events(doc, events)))
    root = ET.fromstring(svg)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    assert len(_series(root)) == 64
    legend = [el for el in root.iter(f"{SVG}text") if "run-" in "".join(el.itertext())]
    assert len(legend) == 64
    rows = {float(el.attrib["y"]) for el in legend}
    assert 8 <= len(rows) <= 32  # folded into rows of several entries, not one line per run
    for el in legend:
        assert 0 <= float(el.attrib["x"]) < width - 60 and float(el.attrib["y"]) < height


def test_a_short_quickstart_draws_one_series_per_run(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    done = _optlab("compare", "quickstart", "--set", "train.epochs=1", "--set", "data.train_limit=200",
                   "--out", str(out), "-q", "-f", "markdown")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (out / "report.md").read_text()  # with its chart links
    runs = [r["name"] for r in json.loads((out / "results.json").read_text())["runs"]]
    assert len(runs) == 6
    charts = sorted(p.name for p in (out / "charts").iterdir())
    assert charts == ["loss.svg", "lr.svg", "test_metrics.svg", "val_metric.svg"]  # no target: no time chart
    for name in charts:
        root = ET.parse(out / "charts" / name).getroot()
        assert sorted(_series(root)) == sorted(runs), name
        assert all(math.isfinite(v) for v in _numbers(root)), name
    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert all(f"](charts/{name})" in done.stdout for name in charts)
    skipped = _optlab("report", str(out), "--no-charts", "-f", "markdown")
    assert skipped.returncode == 0 and "](charts/" not in skipped.stdout


def test_report_redraws_the_charts_on_another_x_axis(seeded: Path) -> None:
    done = _optlab("report", str(seeded), "--x-axis", "epoch", "-f", "json")
    assert done.returncode == 0, done.stderr
    texts = _texts(ET.parse(seeded / "charts" / "loss.svg").getroot())
    assert "epoch" in texts and "samples seen" not in texts
    bad = _optlab("report", str(seeded), "--x-axis", "wall")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert _optlab("report", str(seeded), "-f", "json").returncode == 0  # back to samples seen


def test_a_results_json_alone_still_charts_every_epoch(seeded: Path, tmp_path: Path) -> None:
    """A shared results.json without its events.jsonl: the charts come from the history."""
    (tmp_path / "results.json").write_text((seeded / "results.json").read_text())
    done = _optlab("report", str(tmp_path), "-f", "json")
    assert done.returncode == 0, done.stderr
    results = json.loads((seeded / "results.json").read_text())
    val = ET.parse(tmp_path / "charts" / "val_metric.svg").getroot()
    assert sorted(_series(val)) == ["adam", "sgd"]
    loss = ET.parse(tmp_path / "charts" / "loss.svg").getroot()
    assert sorted(_series(loss)) == ["adam", "sgd"]
    assert all(math.isfinite(v) for v in _numbers(loss))
    assert len(results["runs"][0]["history"]) == 2
