"""RUN_DIR/report.html: one self-contained page (inline SVG and CSS, no JavaScript, no external
URL), readable offline, mailed, at laptop width and on a phone.

It holds the experiment header (preset, dataset, device, date, the fingerprints that prove the
runs were compared fairly), the charts, the ranking table with significance marks, the
time-to-target table, and per run its configuration, per-class metrics and confusion matrix
as a heat-map table (inside <details>, which opens without script).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from optlab.runs.aggregate import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    group_of,
    rank_groups,
    ranked_groups,
)
from optlab.runs.combine import combined_notes
from optlab.runs.formatting import (
    TARGET_COLUMNS,
    format_cell,
    format_duration,
    header,
    positive_class,
    target_of,
    task_of,
)
from optlab.runs.grouping import Grouping
from optlab.runs.notes import note_lines, run_notes
from optlab.runs.palette import STATUS_HEX, hex_color, run_color
from optlab.runs.reports import (
    best_per_column,
    comparison_warnings,
    config_summary,
    dataset_summary,
    report_columns,
    summary_rows,
)
from optlab.runs.seed_reports import (
    AGG_FACTS,
    RANK_LEGEND,
    compact_mean_std,
    rank_text,
    target_cells,
    target_headers,
)
from optlab.runs.sweep_report import SWEEP_SVG, sweep_html

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0; color: #1a1a1a; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 1em 0 0.4em; }
.description { color: #444; margin: 0 0 0.8em; white-space: pre-line; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0.6em 0; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 6px; }
figure svg { width: 100%; height: auto; display: block; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; background: #fff; font-size: 0.9em; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e6e6e6; white-space: nowrap; }
th { background: #f0f0f0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; color: #006400; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; border-radius: 2px; vertical-align: -0.05em; }
.status { font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
details { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 6px 10px; margin: 8px 0; }
summary { cursor: pointer; font-weight: bold; }
table.heat td { text-align: center; min-width: 2.2em; padding: 3px 4px; }
code { font-size: 0.92em; }
@media (max-width: 600px) {
  main { padding: 10px 8px 30px; }
  .charts { grid-template-columns: 1fr; }
  h1 { font-size: 1.3em; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 4px; }
}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _table(heads: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool], attrs: str = "") -> str:
    """A table of already-escaped cells (each row's cells as HTML strings)."""
    head = "".join(f'<th class="num">{h}</th>' if num else f"<th>{h}</th>" for h, num in zip(heads, numeric, strict=True))
    body = "".join("<tr>" + "".join(rows_cells) + "</tr>" for rows_cells in rows)
    return f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _td(text: str, numeric: bool = True, best: bool = False, column: str = "") -> str:
    classes = " ".join(c for c in ("num" if numeric else "", "best" if best else "") if c)
    data = f' data-column="{_e(column)}"' if column else ""
    klass = f' class="{classes}"' if classes else ""
    return f"<td{klass}{data}>{_e(text)}</td>"


def _swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{color}"></span>'


def _status(status: str) -> str:
    return f'<span class="status" style="color:{STATUS_HEX.get(status, "#333333")}">{_e(status.replace("_", " "))}</span>'


def _colors(results: dict[str, Any]) -> dict[str, str]:
    """Each run's colour as in the TUI, the console and the charts: by configuration (group)."""
    grouping = Grouping.from_doc(results)
    colors = {}
    for i, (group, names) in enumerate(grouping.groups.items()):
        colors[group] = hex_color(run_color(i))
        for name in names:
            colors[name] = colors[group]
    return colors


# ---------------------------------------------------------------- sections


def _header(results: dict[str, Any], fairness: str) -> list[str]:
    preset = results.get("preset") or {}
    out = [f"<h1>optlab report: {_e(preset.get('name', 'unnamed'))}</h1>"]
    description = str(preset.get("description") or "").strip()
    if description:
        out.append(f'<p class="description">{_e(description)}</p>')
    wall = results.get("wall_time_s")
    status = str(results.get("status", "unknown"))
    facts = [
        ("Dataset", _e(dataset_summary(results.get("dataset") or {}))),
        ("Device", _e(results.get("device") or "unknown")),
        ("Experiment", _status(status) + (f", {_e(format_duration(wall))}" if isinstance(wall, int | float) else "")),
        ("Started", _e(results.get("started_at") or "unknown")),
        ("Versions", _e(f"optlab {results.get('optlab_version', '?')}, torch {results.get('torch_version', '?')}")),
    ]
    facts += [("Runs", _e(note)) for note in combined_notes(results)]
    if fairness:
        facts.append(("Fairness", fairness + ' <a href="#fingerprints">(fingerprints)</a>'))
    facts += [("Warning", _e(warning)) for warning in comparison_warnings(results)]
    out.append('<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    return out


def _fairness(results: dict[str, Any], colors: dict[str, str]) -> tuple[str, list[str]]:
    """The claim the fingerprints prove (for the header) and the fingerprint table."""
    runs = [r for r in results.get("runs") or [] if r.get("init_fingerprint") or r.get("data_fingerprint")]
    if not runs:
        return "", []
    def shared(key: Any, fingerprint: str) -> bool:
        """Every set of runs with the same key has one fingerprint."""
        seen: dict[str, Any] = {}
        return all(seen.setdefault(json.dumps(key(r), sort_keys=True, default=str), r.get(fingerprint))
                   == r.get(fingerprint) for r in runs)

    def seed(run: dict[str, Any]) -> Any:
        return (run.get("config") or {}).get("seed")

    def model_and_seed(run: dict[str, Any]) -> Any:
        config = run.get("config") or {}
        return [config.get("model"), config.get("seed")]

    inits = len({r.get("init_fingerprint") for r in runs})
    orders = len({r.get("data_fingerprint") for r in runs})
    checks = [
        ("runs with the same model and seed start from identical weights", shared(model_and_seed, "init_fingerprint")),
        ("runs with the same seed see the same data order, whatever their batch size", shared(seed, "data_fingerprint")),
    ]
    def plural(n: int, what: str) -> str:
        return f"{n} {what}" if n == 1 else f"{n} {what}s"

    claim = f"{plural(len(runs), 'run')}, {plural(inits, 'set')} of initial weights, {plural(orders, 'data order')}: " + "; ".join(
        f"{text} ({'verified' if ok else 'NOT so: fingerprints differ'})" for text, ok in checks) + "."
    rows = [[f"<td>{_swatch(colors.get(r['name'], '#888'))}{_e(r['name'])}</td>",
             _td(str((r.get("config") or {}).get("seed", "-"))),
             f"<td><code>{_e(r.get('init_fingerprint') or '-')}</code></td>",
             f"<td><code>{_e(r.get('data_fingerprint') or '-')}</code></td>"] for r in runs]
    return _e(claim), ['<h2 id="fingerprints">Fingerprints</h2>', f'<p class="note">{_e(claim)}</p>',
                       _table(["run", "seed", "initial weights", "data order"], rows, [False, True, False, False])]


def _charts(charts: dict[str, str]) -> list[str]:
    if not charts:
        return []
    figures = []
    for name, svg in charts.items():
        # Inline SVG needs no namespace declaration in HTML, and the page holds no URL at all.
        body = svg.strip().replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
        figures.append(f'<figure id="chart-{_e(name.removesuffix(".svg"))}">{body}</figure>')
    return ["<h2>Charts</h2>", '<div class="charts">' + "".join(figures) + "</div>"]


def _ranking(results: dict[str, Any], colors: dict[str, str]) -> list[str]:
    """Runs (or configurations over seeds) in ranking order, best values in bold."""
    task = task_of(results)
    cols = [c for c in report_columns(results) if c not in TARGET_COLUMNS]
    rows = summary_rows(results)
    best = best_per_column(rows, task, tuple(cols))
    ranking = rank_groups(results)
    position = {name: i for i, name in enumerate(ranking["order"])}
    by_name = {r["name"]: r for r in results.get("runs") or []}
    rows.sort(key=lambda row: position.get(group_of(by_name.get(row["name"], {"name": row["name"]})), len(position)))
    numeric = [c not in ("name", "status") for c in cols]
    out_rows = []
    for row in rows:
        cells = []
        for c in cols:
            if c == "name":
                cells.append(f'<td data-column="name">{_swatch(colors.get(row["name"], "#888"))}{_e(row["name"])}</td>')
            elif c == "status":
                cells.append(f"<td>{_status(str(row['status']))}</td>")
            else:
                cells.append(_td(format_cell(row, c), best=row["name"] in best.get(c, ()), column=c))
        out_rows.append(cells)
    aggregates = results.get("aggregates")
    # With seeds the configurations, with their significance marks, are the ranking; the runs follow.
    out = ["<h2>Ranking</h2>", *_seeds(results, aggregates, colors), "<h3>Each run</h3>"] if aggregates else [
        "<h2>Ranking</h2>"]
    out.append(_table([_e(header(c)) for c in cols], out_rows, numeric, ' id="runs"' if aggregates else ' id="ranking"'))
    if best:
        out.append('<p class="note">Best value of each column in bold (diverged and failed runs excluded). '
                   f"Ordered by test {_e(ranking['metric'])}.</p>")
    positive = positive_class(results)
    if positive:
        out.append(f'<p class="note">{_e(positive[0].upper() + positive[1:])}.</p>')
    return out


def _seeds(results: dict[str, Any], aggregates: dict[str, Any], colors: dict[str, str]) -> list[str]:
    metrics = [m for m in (REGRESSION_METRICS if task_of(results) == "regression" else CLASSIFICATION_METRICS)
               if m != "loss"]
    cols = [*metrics, "test_loss", "wall_time_s"]
    rows = []
    for group, rank in ranked_groups(results):
        cells = [_td(rank_text(rank)),
                 f"<td>{_swatch(colors.get(group['group'], '#888'))}{_e(group['group'])}</td>",
                 _td(str(group["n"])), _td(", ".join(str(s) for s in group["seeds"]), numeric=False)]
        for c in cols:
            stat = group["wall_time_s"] if c == "wall_time_s" else group["test"].get(AGG_FACTS.get(c, c))
            cells.append(_td(compact_mean_std(stat, c), column=c))  # compact: a laptop's width holds them all
        rows.append(cells)
    heads = ["rank", "configuration", "n", "seeds", *(_e(header(c)) for c in cols)]
    numeric = [True, False, True, False] + [True] * len(cols)
    ranking = aggregates.get("ranking") or {}
    out = [_table(heads, rows, numeric, ' id="ranking"'),
           f'<p class="note">Mean ± sample standard deviation (ddof = {_e(aggregates.get("std_ddof", 1))}) over '
           f"each configuration's seeds. {_e(RANK_LEGEND.replace('`', ''))}.</p>"]
    if ranking.get("text"):
        out.append(f"<p><strong>Ranking:</strong> {_e(ranking['text'])}.</p>")
    return out


def _time_to_target(results: dict[str, Any], colors: dict[str, str]) -> list[str]:
    target = target_of(results)
    if not target:
        return []
    out = ["<h2>Time to target</h2>",
           f'<p class="note">Target: {_e(target.get("metric"))} = {_e(target.get("value"))} '
           "(first epoch end that reached it).</p>"]
    aggregates = results.get("aggregates")
    if aggregates:
        rows = [[f"<td>{_swatch(colors.get(g['group'], '#888'))}{_e(g['group'])}</td>",
                 *(_td(c) for c in target_cells(g))] for g, _ in ranked_groups(results)]
        heads = ["configuration", *(_e(h) for h in target_headers())]
    else:
        rows = []
        for row in summary_rows(results):
            ttt = next((r.get("time_to_target") for r in results["runs"] if r["name"] == row["name"]), None) or {}
            reached = "yes" if ttt.get("reached") else "no"
            rows.append([f"<td>{_swatch(colors.get(row['name'], '#888'))}{_e(row['name'])}</td>", _td(reached),
                         *(_td(format_cell(row, c), column=c) for c in TARGET_COLUMNS)])
        heads = ["run", "reached", *(_e(header(c)) for c in TARGET_COLUMNS)]
    out.append(_table(heads, rows, [False] + [True] * (len(heads) - 1)))
    return out


def _heat(matrix: list[list[Any]], names: Sequence[str]) -> str:
    """The confusion matrix, each cell shaded by its share of its true class (row)."""
    head = "<tr><th>true \\ predicted</th>" + "".join(f'<th class="num">{_e(n)}</th>' for n in names) + "</tr>"
    body = []
    for name, row in zip(names, matrix, strict=False):
        total = sum(v for v in row if isinstance(v, int | float)) or 1
        cells = []
        for value in row:
            share = (value / total) if isinstance(value, int | float) else 0.0
            alpha = f"{0.08 + 0.8 * share:.2f}" if share > 0 else "0"
            ink = "#ffffff" if share > 0.55 else "#1a1a1a"
            cells.append(f'<td style="background:rgba(0,95,175,{alpha});color:{ink}">{_e(value)}</td>')
        body.append(f"<tr><th>{_e(name)}</th>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table class="heat">{head}{"".join(body)}</table></div>'


def _per_class(test: dict[str, Any]) -> str:
    per_class = test.get("per_class") or {}
    names = per_class.get("names") or []
    keys = [k for k in ("precision", "recall", "f1", "specificity", "support") if k in per_class]
    if not names or not keys:
        return ""
    rows = []
    for i, name in enumerate(names):
        cells = [f"<td>{_e(name)}</td>"]
        for k in keys:
            value = per_class[k][i] if i < len(per_class[k]) else None
            text = "-" if value is None else (str(value) if k == "support" else f"{value:.4f}")
            cells.append(_td(text))
        rows.append(cells)
    return _table(["class", *keys], rows, [False] + [True] * len(keys))


def _run_details(results: dict[str, Any], colors: dict[str, str]) -> list[str]:
    out = ["<h2>Runs</h2>"]
    notes = note_lines(run_notes(results))  # once per configuration, not once per seed
    if notes:
        out.append("<ul>" + "".join(f"<li>Note, {_e(who)}: {_e(note)}</li>" for who, note, _ in notes) + "</ul>")
    for run in results.get("runs") or []:
        name = str(run.get("name", "?"))
        status = str(run.get("status", "unknown"))
        items = [f"<li>Config: {_e(config_summary(run.get('config') or {}))}</li>"]
        if run.get("n_params"):
            items.append(f"<li>Parameters: {run['n_params']:,}</li>")
        items.append(f"<li>Epochs completed: {_e(run.get('epochs_completed', 0))}"
                     + (f", best epoch {_e(run['best_epoch'])}" if run.get("best_epoch") else "") + "</li>")
        if status != "finished":
            items.append(f"<li>{_status(status)}: {_e(run.get('reason') or 'no reason recorded')}</li>")
        test = run.get("test") or {}
        parts = [f"<summary>{_swatch(colors.get(name, '#888'))}{_e(name)} ({_status(status)})</summary>",
                 "<ul>" + "".join(items) + "</ul>"]
        per_class = _per_class(test)
        if per_class:
            parts += ["<h3>Per-class test metrics</h3>", per_class]
        matrix = test.get("confusion_matrix")
        names = (test.get("per_class") or {}).get("names") or (results.get("dataset") or {}).get("class_names")
        if matrix and names:
            parts += ["<h3>Confusion matrix (test)</h3>", _heat(matrix, [str(n) for n in names])]
        out.append("<details>" + "".join(parts) + "</details>")
    return out


TABLE_SELECTORS = ("table", "th", "td", ".swatch", ".status", ".note", ".scroll")


def _scoped(rule: str) -> str:
    selectors, _, body = rule.partition("{")
    return ", ".join(f".optlab {s.strip()}" for s in selectors.split(",")) + " {" + body


def table_html(results: dict[str, Any]) -> str:
    """The report's ranking table (and the notes on where combined runs come from) as an HTML
    fragment with its own styles scoped to it: how a notebook shows an experiment."""
    colors = _colors(results)
    # Scoped to the fragment: the notebook's own page keeps its styles.
    css = "".join(_scoped(line) for line in CSS.splitlines() if line.startswith(TABLE_SELECTORS))
    title = _e((results.get("preset") or {}).get("name", "unnamed"))
    status = _status(str(results.get("status", "unknown")))
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in combined_notes(results))
    body = "".join(_ranking(results, colors)).replace("<h2>Ranking</h2>", "", 1)
    return f'<div class="optlab"><style>{css}</style><p><strong>{title}</strong> ({status})</p>{notes}{body}</div>'


def to_html(results: dict[str, Any], charts: dict[str, str]) -> str:
    """The page; `charts` maps file names to SVG text (inlined, so the file stands alone)."""
    colors = _colors(results)
    title = _e(f"optlab report: {(results.get('preset') or {}).get('name', 'unnamed')}")
    claim, fingerprints = _fairness(results, colors)
    # A sweep leads with its view (chart and per-group table); the other charts and tables follow.
    sweep = sweep_html(results, charts.get(SWEEP_SVG))
    charts = {name: svg for name, svg in charts.items() if name != SWEEP_SVG}
    body = [*_header(results, claim), *sweep, *_charts(charts), *_ranking(results, colors),
            *_time_to_target(results, colors), *fingerprints, *_run_details(results, colors)]
    page = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{CSS}</style></head>",
        "<body><main>",
        *body,
        "</main></body></html>",
    ]
    return "\n".join(page) + "\n"
