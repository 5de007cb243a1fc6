"""What a tuning run shows: tune.json (the budget table, every trial, the tuned ranking),
report.md and report.html (the ranking of the final seeds, each candidate's best values, the
expected best validation score against the number of trials, a sensitivity chart per
candidate), and `--write-preset`'s compare preset at the tuned values.

The expected best of n trials is Dodge et al.'s (2019, "Show Your Work"): the expected maximum
of n draws, with replacement, from the empirical distribution of a candidate's trial scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optlab.runs.aggregate import aggregate, rank_groups
from optlab.runs.charts import render_charts
from optlab.runs.files import atomic_write_json, atomic_write_text
from optlab.runs.html import to_html
from optlab.runs.palette import hex_color, run_color
from optlab.runs.reports import to_markdown
from optlab.runs.svg import Figure, Line, line_chart

if TYPE_CHECKING:
    from optlab.tuning.service import TuneOutcome

TUNE_JSON = "tune.json"


def expected_best(values: Sequence[float], higher: bool = True) -> list[float]:
    """E[best of n draws] for n = 1..len(values): sum_i v_(i) ((i/N)^n - ((i-1)/N)^n) over the
    values sorted from worst to best."""
    ordered = sorted(values, reverse=not higher)
    total = len(ordered)
    out = []
    for n in range(1, total + 1):
        out.append(sum(v * ((i / total) ** n - ((i - 1) / total) ** n) for i, v in enumerate(ordered, start=1)))
    return out


def _scores(trials: Sequence[dict[str, Any]], fallback: float) -> list[float]:
    """Every trial's score, pruned ones at their last value; a non-finite one (a diverged trial
    on a loss objective) at `fallback`, the worst finite score of the study."""
    out = []
    for t in trials:
        v = t.get("value")
        if isinstance(v, int | float):
            out.append(float(v) if math.isfinite(v) else fallback)
    return out


def summary(outcome: TuneOutcome) -> dict[str, Any]:
    """tune.json: settings, per candidate its space, budget spent, trials and best values; the
    tuned ranking over the final seeds (Welch, runs/aggregate.py)."""
    settings = outcome.settings
    higher = settings.objective == "val_accuracy"
    finals = {name for c in outcome.candidates for name in c.finals}
    doc = outcome.results
    final_doc = {**doc, "runs": [r for r in doc.get("runs") or [] if r.get("name") in finals]}
    final_doc["aggregates"] = aggregate(final_doc)
    candidates: list[dict[str, Any]] = []
    for c in outcome.candidates:
        best = c.best(higher)
        edges = []
        if best is not None:
            recorded = {p.key: (1.0 - best.params[p.name]) if p.one_minus else best.params[p.name] for p in c.space.params}
            for p in c.space.params:
                edge = p.at_edge(recorded[p.key])
                if edge:
                    edges.append(f"{c.name}: best {p.name} = {best.params[p.name]:.4g} is at the {edge} edge of "
                                 f"its range ({p.describe()}): widen it")
        trials = [vars(t) | {"curve": list(t.curve)} for t in c.trials]
        candidates.append({
            "name": c.name, "optimizer": c.spec.optimizer.name, "space": [p.describe() for p in c.space.params],
            "space_origin": c.space.origin, "note": c.space.note,
            "budget": {"trials": len(c.trials), "epochs": sum(t.epochs for t in c.trials),
                       "steps": sum(t.steps for t in c.trials),
                       "wall_time_s": round(sum(t.wall_time_s for t in c.trials), 3),
                       "pruned": sum(t.status == "pruned" for t in c.trials),
                       "diverged_or_failed": sum(t.status in ("diverged", "failed") for t in c.trials)},
            "best": None if best is None else {"trial": best.number, "run": best.run, "value": best.value,
                                               "params": best.params},
            "edges": edges, "finals": c.finals, "trials": trials,
        })
    finite = [t["value"] for c in candidates for t in c["trials"]
              if isinstance(t["value"], int | float) and math.isfinite(t["value"])]
    fallback = (min(finite) if higher else max(finite)) if finite else 0.0
    for row in candidates:
        row["expected_best"] = expected_best(_scores(row["trials"], fallback), higher)
    return {
        "settings": settings.model_dump(), "storage": outcome.storage, "interrupted": outcome.interrupted,
        "wall_time_s": round(outcome.wall_time_s, 3), "candidates": candidates,
        "ranking": rank_groups(final_doc) if final_doc["runs"] else None, "final_results": final_doc,
    }


def _json_safe(value: Any) -> Any:
    """JSON has no inf or NaN (a diverged trial on a loss objective): written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(tune: dict[str, Any]) -> str:
    s = tune["settings"]
    lines = [f"# Tuned comparison: {tune['final_results'].get('preset', {}).get('name', '')}", "",
             f"Every candidate got {s['budget']} trials ({s['sampler']} sampler, seed {s['seed']}, pruner "
             f"{s['pruner']}), selected on {s['objective']} (validation only); each best trial retrained over "
             f"{s['final_seeds']} seed(s).", ""]
    if tune["interrupted"]:
        lines += ["**Interrupted**: the numbers below cover the trials that ended.", ""]
    ranking = tune.get("ranking")
    if ranking:
        lines += ["## Tuned ranking (final seeds, test set)", "", ranking.get("text", ""), ""]
    lines += ["## Best hyperparameters", "", "| candidate | best trial | " + s["objective"] + " | values |",
              "| --- | --- | --- | --- |"]
    for c in tune["candidates"]:
        best = c["best"]
        values = ", ".join(f"{k} = {_fmt(v)}" for k, v in (best or {}).get("params", {}).items())
        lines.append(f"| {c['name']} | {best['run'] if best else '-'} | {_fmt(best['value']) if best else '-'} | {values} |")
    notes = [e for c in tune["candidates"] for e in c["edges"]] + [c["note"] for c in tune["candidates"] if c["note"]]
    lines += [""] + [f"- note: {n}" for n in notes] + ([""] if notes else [])
    lines += ["## Budget (equal for every candidate)", "",
              "| candidate | trials | pruned | diverged/failed | epochs | optimizer steps | training time (s) | space |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in tune["candidates"]:
        b = c["budget"]
        lines.append(f"| {c['name']} | {b['trials']} | {b['pruned']} | {b['diverged_or_failed']} | {b['epochs']} | "
                     f"{b['steps']} | {b['wall_time_s']:.2f} | {'; '.join(c['space'])} |")
    lines += ["", "## Expected best validation score vs trials (Dodge et al. 2019)", "",
              "| candidate | " + " | ".join(f"n={n}" for n in range(1, s["budget"] + 1)) + " |",
              "| --- " * (s["budget"] + 1) + "|"]
    for c in tune["candidates"]:
        cells = [f"{v:.4f}" for v in c["expected_best"]] + ["-"] * (s["budget"] - len(c["expected_best"]))
        lines.append(f"| {c['name']} | " + " | ".join(cells) + " |")
    lines += ["", "## Trials", "", "| trial | status | " + s["objective"] + " | values |", "| --- | --- | --- | --- |"]
    for c in tune["candidates"]:
        for t in c["trials"]:
            values = ", ".join(f"{k} = {_fmt(v)}" for k, v in t["params"].items())
            lines.append(f"| {t['run']} | {t['status']} | {_fmt(t['value'])} | {values} |")
    return "\n".join(lines) + "\n"


def tune_charts(tune: dict[str, Any]) -> dict[str, str]:
    """expected_best.svg (per candidate, the Dodge curve) and sensitivity.svg (every trial's
    score against log10 lr)."""
    obj = tune["settings"]["objective"]
    curves = Figure("Expected best validation score vs trials", "trials", obj,
                    note="expected maximum of n draws from each candidate's trial scores")
    sens = Figure("Sensitivity: every trial's score vs learning rate", "log10 lr", obj,
                  note="one dot per trial (pruned at its last value, diverged at the worst)")
    for i, c in enumerate(tune["candidates"]):
        color = hex_color(run_color(i))
        ys = c["expected_best"]
        curves.lines.append(Line(list(range(1, len(ys) + 1)), ys, color, c["name"], dots=True))
        pts = [(math.log10(t["params"]["lr"]), t["value"]) for t in c["trials"]
               if isinstance(t["params"].get("lr"), int | float) and t["params"]["lr"] > 0
               and isinstance(t["value"], int | float) and math.isfinite(t["value"])]
        if pts:
            sens.lines.append(Line([p[0] for p in pts], [p[1] for p in pts], color, c["name"], dots=True, joined=False))
    return {"expected_best.svg": line_chart(curves), "sensitivity.svg": line_chart(sens)}


def write_tune_files(root: Path, outcome: TuneOutcome, charts: bool = True) -> dict[str, Any]:
    tune = summary(outcome)
    atomic_write_json(root / TUNE_JSON, _json_safe(tune))
    final = tune["final_results"]
    svgs = tune_charts(tune)
    if charts and final["runs"]:
        svgs.update(render_charts(final, []))
    for name, text in svgs.items():
        atomic_write_text(root / "charts" / name, text)
    md = markdown(tune)
    if final["runs"]:
        md += "\n# The final seeds\n\n" + to_markdown(final, list(svgs)).split("\n", 1)[1]
    atomic_write_text(root / "report.md", md)
    if charts:
        atomic_write_text(root / "report.html", to_html(final, svgs))
    return tune
