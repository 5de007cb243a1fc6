"""The sweep view in the reports: its chart (metric against the swept value, one line per group,
seeds as a band, points whose every seed diverged as dots on the worst edge) and its per-group
table, in markdown and HTML. report.md and report.html of a sweep lead with these."""

from __future__ import annotations

from html import escape
from typing import Any

from optlab.runs.palette import hex_color, run_color
from optlab.runs.svg import Area, Figure, Line, line_chart
from optlab.runs.sweep import SUMMARY_HEADERS, SweepView, edge_value, summary_rows, sweep_view

SWEEP_SVG = "sweep.svg"


def group_colors(view: SweepView) -> dict[str, str]:
    """One colour per group, in the order groups are declared (the same order as the TUI's)."""
    return {g.name: hex_color(run_color(i)) for i, g in enumerate(view.groups)}


def sweep_figure(view: SweepView) -> Figure:
    colors = group_colors(view)
    edge = edge_value(view)
    seeds = any(len(p.values) > 1 for g in view.groups for p in g.points)
    notes = ["mean over seeds, band min–max"] if seeds else []
    fig = Figure(f"{view.metric_label} by {view.axis_name}", view.x_label, view.metric_label,
                 x_ticks=view.ticks, clip_outliers=False)
    for group in view.groups:
        color = colors[group.name]
        scored = [(p.x, p.mean, p.lo, p.hi) for p in group.points if p.mean is not None]
        fig.lines.append(Line([x for x, *_ in scored], [mean for _, mean, _, _ in scored], color, group.name,
                              width=1.8, dots=True))
        if seeds and len(scored) > 1:
            fig.areas.append(Area([x for x, *_ in scored], [lo if lo is not None else mean for _, mean, lo, _ in scored],
                                  [hi if hi is not None else mean for _, mean, _, hi in scored], color))
        dead = [p.x for p in group.points if p.all_diverged]
        if dead and edge is not None:
            fig.lines.append(Line(dead, [edge] * len(dead), color, joined=False, dots=True))
    if edge is not None and any(p.all_diverged for g in view.groups for p in g.points):
        notes.append("dots on the " + ("lower" if view.higher_is_better else "upper") + " edge: every seed diverged")
    fig.note = " · ".join(notes)
    return fig


def sweep_svg(results: dict[str, Any]) -> str | None:
    view = sweep_view(results)
    return line_chart(sweep_figure(view)) if view is not None else None


def _headers(view: SweepView) -> dict[str, str]:
    return {**SUMMARY_HEADERS, "best": f"best {view.metric_label.split(' ', 1)[1]}",
            "setting": f"at {view.axis_name}"}


def _legend(view: SweepView) -> str:
    direction = "higher" if view.higher_is_better else "lower"
    return (f"Per group, the {view.metric_label} ({direction} is better) at each {view.axis_name}; "
            f"best: the best setting's value (the mean over its seeds); one step away: how much worse the "
            f"worse of the best setting's two grid neighbours is (diverges: a neighbour diverged on every seed). "
            f"Only ended runs count; diverged runs count in `diverged`.")


def sweep_markdown(results: dict[str, Any], chart: bool) -> list[str]:
    """The report's sweep section (empty when no sweep made the runs); `chart`: embed charts/sweep.svg."""
    view = sweep_view(results)
    if view is None:
        return []
    heads = _headers(view)
    out = ["", f"## Sweep: {view.metric_label} by {view.axis_name}"]
    if chart:
        out += ["", f"![sweep](charts/{SWEEP_SVG})"]
    out += ["", "| " + " | ".join(heads.values()) + " |",
            "|" + "|".join("---" if k == "group" else "---:" for k in heads) + "|"]
    for i, row in enumerate(summary_rows(view)):
        cells = [row[k] for k in heads]
        if i == 0 and row["best"] != "-":
            cells[1] = f"**{cells[1]}**"
        out.append("| " + " | ".join(cells) + " |")
    out += ["", _legend(view).replace("`", "")]
    return out


def sweep_html(results: dict[str, Any], svg: str | None) -> list[str]:
    """The page's sweep section: the chart and the per-group table (nothing without a sweep)."""
    view = sweep_view(results)
    if view is None:
        return []
    colors = group_colors(view)
    heads = _headers(view)
    out = [f'<h2 id="sweep">Sweep: {escape(view.metric_label)} by {escape(view.axis_name)}</h2>']
    if svg:
        body = svg.strip().replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
        out.append(f'<figure id="chart-sweep">{body}</figure>')
    rows = []
    for i, row in enumerate(summary_rows(view)):
        swatch = f'<span class="swatch" style="background:{colors.get(row["group"], "#888")}"></span>'
        cells = [f"<td>{swatch}{escape(row['group'])}</td>"]
        for key in list(heads)[1:]:
            best = ' best' if key == "best" and i == 0 and row["best"] != "-" else ""
            cells.append(f'<td class="num{best}">{escape(row[key])}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f'<th{"" if k == "group" else " class=num"}>{escape(v)}</th>' for k, v in heads.items())
    out.append(f'<div class="scroll"><table id="sweep-groups"><tr>{head}</tr>{"".join(rows)}</table></div>')
    out.append(f'<p class="note">{escape(_legend(view).replace("`", ""))}</p>')
    return out
