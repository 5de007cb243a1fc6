"""Reports built from a results document: the summary table as rows, Markdown, CSV and JSON.

Pure data in, text out (no terminal libraries here): the console table, the TUI and the files
in a run directory all read the same rows, so they always agree. How a cell reads is in
`optlab.runs.formatting`; the across-seeds section is `optlab.runs.seed_reports`.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optlab.errors import RunDirError
from optlab.runs.aggregate import group_of, seed_of
from optlab.runs.combine import combined_notes
from optlab.runs.formatting import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    TARGET_COLUMNS,
    dataset_title,
    format_cell,
    format_duration,
    header,
    positive_class,
    target_of,
    task_of,
)
from optlab.runs.notes import note_lines, run_notes
from optlab.runs.results import replay
from optlab.runs.seed_reports import aggregate_rows, seeds_markdown
from optlab.runs.store import _finite, load_results, read_events, results_text
from optlab.runs.sweep_report import SWEEP_SVG, sweep_markdown
from optlab.training.events import ExperimentStarted

RUN_FACTS = ("test_loss", "best_epoch", "wall_time_s", "samples_per_s")

CLASSIFICATION_COLUMNS = ("name", "status", *CLASSIFICATION_METRICS, *RUN_FACTS)
REGRESSION_COLUMNS = ("name", "status", *REGRESSION_METRICS, *RUN_FACTS)

HIGHER_IS_BETTER = frozenset({*CLASSIFICATION_METRICS, "r2", "samples_per_s"})
LOWER_IS_BETTER = frozenset({"test_loss", "mse", "rmse", "mae", "wall_time_s", *TARGET_COLUMNS})
# Runs whose numbers are comparable: they ended normally or were stopped, and were tested.
RANKED_STATUSES = frozenset({"finished", "early_stopped", "stopped"})


def columns(task: str) -> tuple[str, ...]:
    return REGRESSION_COLUMNS if task == "regression" else CLASSIFICATION_COLUMNS


def report_columns(results: dict[str, Any]) -> tuple[str, ...]:
    """The columns of this experiment's table: the task's, and time to target when set."""
    cols = columns(task_of(results))
    return (*cols, *TARGET_COLUMNS) if target_of(results) else cols


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run, in preset order; a value that is missing or undefined is None."""
    task = task_of(results)
    metrics = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    target, repeats = target_of(results), bool(results.get("aggregates"))
    rows = []
    for run in results.get("runs") or []:
        test = run.get("test") or {}
        row: dict[str, Any] = {"name": run.get("name", "?"), "status": run.get("status", "unknown")}
        for key in metrics:
            row[key] = _number(test.get(key))
        row["test_loss"] = _number(test.get("loss"))
        row["best_epoch"] = _number(run.get("best_epoch"))
        row["wall_time_s"] = _number(run.get("wall_time_s"))
        row["samples_per_s"] = _number(run.get("train_samples_per_s"))
        # Extra keys only where they mean something, so a plain experiment's rows keep the
        # task's columns exactly.
        if target:
            ttt = run.get("time_to_target") or {}
            row["target_epoch"] = _number(ttt.get("epoch"))
            row["target_samples"] = _number(ttt.get("samples_seen"))
            row["target_time_s"] = _number(ttt.get("wall_time_s"))
            row["target_reached"] = ttt.get("reached")
        if repeats:
            row["group"], row["seed"] = group_of(run), seed_of(run)
        rows.append(row)
    return rows


def _ranked(row: dict[str, Any], task: str) -> bool:
    if row.get("status") not in RANKED_STATUSES:
        return False
    tested = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    return any(row.get(key) is not None for key in (*tested, "test_loss"))


def best_per_column(
    rows: list[dict[str, Any]], task: str, cols: tuple[str, ...] | None = None
) -> dict[str, set[str]]:
    """The run names holding the best value of each ranked column (ties share it).

    Diverged, failed and untested runs never win; a column is only ranked when at least two
    runs have a value in it (the best of one is no comparison)."""
    eligible = [r for r in rows if _ranked(r, task)]
    best: dict[str, set[str]] = {}
    for column in cols or columns(task):
        if column in HIGHER_IS_BETTER:
            pick = max
        elif column in LOWER_IS_BETTER:
            pick = min
        else:
            continue
        values = [(r[column], r["name"]) for r in eligible if r.get(column) is not None]
        if len(values) < 2:
            continue
        target = pick(v for v, _ in values)
        best[column] = {name for v, name in values if v == target}
    return best


# ---------------------------------------------------------------- run descriptions


def _kwargs_text(params: dict[str, Any], skip: tuple[str, ...] = ("name",)) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if k not in skip and v is not None)


def config_summary(config: dict[str, Any]) -> str:
    """One line: optimizer and its arguments, scheduler, batch size, epochs (and extras that are set)."""
    if not config:
        return "not started"
    opt = config.get("optimizer") or {}
    sched = config.get("scheduler") or {}
    parts = [f"optimizer {opt.get('name', '?')}({_kwargs_text(opt)})"]
    sched_text = f"scheduler {sched.get('name', 'constant')}"
    sched_args = _kwargs_text(sched, ("name", "warmup_epochs", "warmup_start_factor"))
    if sched_args:
        sched_text += f"({sched_args})"
    if sched.get("warmup_epochs"):
        sched_text += f" after {sched['warmup_epochs']} warm-up epochs"
    parts.append(sched_text)
    parts.append(f"batch size {config.get('batch_size', '?')}")
    parts.append(f"epochs {config.get('epochs', '?')}")
    if config.get("loss"):
        parts.append(f"loss {config['loss']}")
    for key in ("label_smoothing", "l1", "clip_grad_norm", "clip_grad_value"):
        if config.get(key):
            parts.append(f"{key} {config[key]}")
    if config.get("amp") not in (None, "off"):
        parts.append(f"amp {config['amp']}")
    if config.get("early_stopping"):
        es = config["early_stopping"]
        parts.append(f"early stopping on {es.get('metric')} (patience {es.get('patience')})")
    return ", ".join(parts)


def gpu_models(results: dict[str, Any]) -> dict[str, list[str]]:
    """GPU model name -> the runs that trained on it (from each run's placement); runs on the
    CPU or without a placement are not counted."""
    models: dict[str, list[str]] = {}
    for run in results.get("runs") or []:
        gpu = (run.get("placement") or {}).get("gpu")
        if gpu:
            models.setdefault(str(gpu), []).append(str(run.get("name", "?")))
    return models


def mixed_gpu_note(results: dict[str, Any]) -> str | None:
    """A warning when the runs trained on more than one GPU model: a faster card finishes
    sooner, so wall time, samples/s and time-to-target do not compare the optimizers."""
    models = gpu_models(results)
    if len(models) < 2:
        return None
    where = "; ".join(f"{gpu}: {', '.join(names)}" for gpu, names in sorted(models.items()))
    return (f"runs trained on {len(models)} GPU models ({where}): wall time, samples/s and "
            "time-to-target are not comparable across them")


def grad_evals_note(results: dict[str, Any]) -> str | None:
    """A warning when some runs took more than one gradient evaluation (forward and backward
    pass) per step, as LBFGS-style optimizers do: per step or per epoch they had more compute."""
    per_step: dict[str, list[float]] = {}  # by configuration: its seeds say the same
    for run in results.get("runs") or []:
        progress = run.get("progress") or {}  # steps and evaluations of one report, never mixed
        steps, evals = progress.get("step") or 0, progress.get("grad_evals") or 0
        if steps and evals > 1.05 * steps:
            per_step.setdefault(group_of(run), []).append(evals / steps)
    if not per_step:
        return None
    heavy = [f"{name} {sum(v) / len(v):.1f}" for name, v in per_step.items()]
    return (f"gradient evaluations per step: {', '.join(heavy)} (the others 1): by steps or epochs "
            "these runs had more compute; compare them by wall time")


def comparison_warnings(results: dict[str, Any]) -> list[str]:
    """What makes some columns unfair across runs, for every table of results."""
    return [note for note in (mixed_gpu_note(results), grad_evals_note(results)) if note]


def dataset_summary(dataset: dict[str, Any]) -> str:
    if not dataset:
        return "unknown"
    reader = f"{dataset.get('name', '?')}, " if dataset.get("title") else ""  # houses (csv, regression)
    text = f"{dataset_title(dataset)} ({reader}{dataset.get('task', '?')}"
    if dataset.get("n_classes"):
        text += f", {dataset['n_classes']} classes"
    text += ")"
    sizes = [
        f"{split} {dataset[f'n_{split}']}" for split in ("train", "val", "test") if f"n_{split}" in dataset
    ]
    if sizes:
        text += ", " + " / ".join(sizes) + " samples"
    if dataset.get("input_shape"):
        text += f", input shape {tuple(dataset['input_shape'])}"
    return text


# ---------------------------------------------------------------- documents


def to_markdown(results: dict[str, Any], charts: Sequence[str] = ()) -> str:
    """The report; `charts` (file names under charts/) are embedded above the tables, so a
    repository host renders them."""
    task = task_of(results)
    rows = summary_rows(results)
    cols = report_columns(results)
    best = best_per_column(rows, task, cols)
    preset = results.get("preset") or {}
    out = [f"# optlab report: {preset.get('name', 'unnamed')}", ""]
    description = str(preset.get("description") or "").strip()
    if description:
        out += [f"> {line}" if line else ">" for line in description.splitlines()] + [""]
    out.append(f"- **Dataset:** {dataset_summary(results.get('dataset') or {})}")
    out.append(f"- **Device:** {results.get('device') or 'unknown'}")
    wall = _number(results.get("wall_time_s"))
    status = results.get("status", "unknown")
    out.append(f"- **Experiment:** {status}" + (f", {format_duration(wall)}" if wall else ""))
    if results.get("started_at"):
        out.append(f"- **Started:** {results['started_at']} (optlab {results.get('optlab_version', '?')})")
    out += [f"- **Runs:** {note}" for note in combined_notes(results)]
    # A sweep leads with its view: metric against the swept value per group, then the rest.
    sweep = sweep_markdown(results, SWEEP_SVG in charts)
    out += sweep
    charts = [name for name in charts if name != SWEEP_SVG]
    if sweep:
        out += ["", "## Every run"]
    if charts:
        for name in charts:
            out += ["", f"![{Path(name).stem.replace('_', ' ')}](charts/{name})"]
    out += ["", "| " + " | ".join(header(c) for c in cols) + " |"]
    out.append("|" + "|".join("---" if c in ("name", "status") else "---:" for c in cols) + "|")
    for row in rows:
        cells = []
        for c in cols:
            text = format_cell(row, c)
            cells.append(f"**{text}**" if row["name"] in best.get(c, ()) else text)
        out.append("| " + " | ".join(cells) + " |")
    if best:
        out += ["", "Best value of each column in **bold** (diverged and failed runs excluded)."]
    positive = positive_class(results)
    if positive:
        out += ["", f"{positive[0].upper() + positive[1:]}."]
    for warning in comparison_warnings(results):
        out += ["", f"**Warning:** {warning}."]
    target = target_of(results)
    if target:
        out += ["", f"Target: {target.get('metric')} = {target.get('value')} (first epoch end that reached it)."]
    out += seeds_markdown(results)
    # Notes once per configuration, not once per seed under each run (`runs/notes.py`).
    notes = note_lines(run_notes(results))
    if notes:
        out += ["", "## Notes", ""] + [f"- **{who}:** {note}" for who, note, _ in notes]
    out += ["", "## Runs"]
    for run in results.get("runs") or []:
        out += ["", f"### {run.get('name', '?')} ({run.get('status', 'unknown')})", ""]
        out.append(f"- Config: {config_summary(run.get('config') or {})}")
        if run.get("n_params"):
            out.append(f"- Parameters: {run['n_params']:,}")
        if run.get("init_fingerprint") or run.get("data_fingerprint"):
            out.append(
                f"- Fingerprints: init `{run.get('init_fingerprint') or '-'}`, "
                f"data order `{run.get('data_fingerprint') or '-'}`"
            )
        out.append(f"- Epochs completed: {run.get('epochs_completed', 0)}")
        test = run.get("test") or {}
        if test.get("roc_auc_note"):
            out.append(f"- Note: {test['roc_auc_note']}")
        if run.get("status") != "finished":
            reason = run.get("reason") or "no reason recorded"
            out.append(f"- **{run.get('status', 'unknown')}:** {reason}")
    return "\n".join(out) + "\n"


def to_csv(results: dict[str, Any]) -> str:
    """One row per run; header = the column names of `summary_rows`; missing values are empty."""
    cols = report_columns(results)
    if target_of(results):  # an empty target cell alone would not say whether it was reached
        cols = (*cols, "target_reached")
    aggregates = results.get("aggregates")
    if aggregates:  # repeated seeds: which group and seed each row is, then mean and std rows
        # (in ranking order, with the configuration's rank)
        cols = (*cols, "group", "seed", "kind", "n", "rank", "rank_mark")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in summary_rows(results):
        writer.writerow({c: ("" if row.get(c) is None else row[c]) for c in cols} | {"kind": "run"})
    for row in aggregate_rows(results) if aggregates else []:
        writer.writerow({c: ("" if row.get(c) is None else row[c]) for c in cols})
    return buf.getvalue()


def to_json(results: dict[str, Any]) -> str:
    """The results document exactly as results.json holds it (undefined numbers as null)."""
    return results_text(_finite(results))


# ---------------------------------------------------------------- run directories on disk


def read_run_dir(root: Path) -> tuple[dict[str, Any], list[int]]:
    """The results of a run directory, replayed from events.jsonl when it holds events (else
    results.json). Returns the document and the numbers of corrupt event lines skipped."""
    results, bad_lines, _ = read_run_dir_from(root)
    return results, bad_lines


def read_run_dir_from(root: Path) -> tuple[dict[str, Any], list[int], str]:
    """`read_run_dir` and where the document came from: "events" (optlab's own record, which
    may be written back as results.json) or "results.json" (read as it is, never rewritten)."""
    if not root.is_dir():
        raise RunDirError(f"{root}: not a run directory (no such directory)")
    if (root / "events.jsonl").is_file():
        log = read_events(root)
        if log.events:
            doc = replay(log.events)
            started = next((e for e in log.events if isinstance(e, ExperimentStarted)), None)
            if started is not None and started.time:  # the replay's own clock is not the run's
                doc["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started.time))
            return _finite(doc), log.bad_lines, "events"
    if (root / "results.json").is_file():
        return load_results(root), [], "results.json"
    raise RunDirError(f"{root}: not a run directory (no events.jsonl or results.json)")


def best_result(results: dict[str, Any]) -> str:
    """The headline of an experiment: best test accuracy, or best R2 (lowest MSE) for regression."""
    rows = [r for r in summary_rows(results) if r["status"] in RANKED_STATUSES]
    if task_of(results) == "regression":
        scored = [(r["r2"], r["name"], "r2") for r in rows if r.get("r2") is not None]
        if not scored:
            scored = [(-r["mse"], r["name"], "mse") for r in rows if r.get("mse") is not None]
    else:
        scored = [(r["accuracy"], r["name"], "accuracy") for r in rows if r.get("accuracy") is not None]
    if not scored:
        return "-"
    value, name, metric = max(scored)
    return f"{metric} {abs(value):.4f} ({name})"
