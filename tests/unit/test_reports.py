"""Reports from a results document: rows, best values, Markdown, CSV, JSON (no training needed)."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from optlab.runs.formatting import format_value
from optlab.runs.publish import write_reports
from optlab.runs.reports import (
    CLASSIFICATION_COLUMNS,
    REGRESSION_COLUMNS,
    best_per_column,
    best_result,
    config_summary,
    read_run_dir,
    summary_rows,
    to_csv,
    to_json,
    to_markdown,
)


def _cls_test(acc: float, loss: float, auc: float | None = 0.99) -> dict[str, Any]:
    return {
        "loss": loss,
        "accuracy": acc,
        "precision": acc - 0.01,
        "recall": acc - 0.02,
        "f1": acc - 0.015,
        "specificity": 0.99,
        "roc_auc": auc,
        "roc_auc_note": None if auc is not None else "ROC-AUC undefined: only one class",
        "n": 100,
    }


def _run(name: str, status: str, test: dict[str, Any] | None, wall: float, rate: float, **extra: Any) -> dict:
    return {
        "name": name,
        "status": status,
        "reason": extra.pop("reason", ""),
        "config": extra.pop(
            "config",
            {
                "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                "scheduler": {"name": "cosine", "warmup_epochs": 0.0, "warmup_start_factor": 0.1},
                "batch_size": 64,
                "epochs": 3,
                "loss": "cross_entropy",
            },
        ),
        "n_params": 1234,
        "init_fingerprint": "abcdef0123456789",
        "data_fingerprint": "0123456789abcdef",
        "notes": extra.pop("notes", []),
        "epochs_completed": 3,
        "best_epoch": extra.pop("best_epoch", 3),
        "wall_time_s": wall,
        "train_samples_per_s": rate,
        "history": [],
        "test": test,
    }


@pytest.fixture
def classification() -> dict[str, Any]:
    return {
        "results_version": 1,
        "optlab_version": "0.1.0",
        "status": "finished",
        "started_at": "2024-01-01T10:00:00+0000",
        "wall_time_s": 12.5,
        "preset": {"name": "demo", "description": "A demo.\nSecond line."},
        "dataset": {
            "name": "digits",
            "task": "multiclass",
            "n_classes": 10,
            "n_train": 10,
            "n_val": 5,
            "n_test": 5,
        },
        "device": "cpu",
        "runs": [
            _run("a", "finished", _cls_test(0.90, 0.30), 10.0, 5000.0),
            _run("b", "early_stopped", _cls_test(0.95, 0.20, auc=None), 6.0, 4000.0, best_epoch=2),
            _run("c", "diverged", None, 0.5, 9000.0, reason="non-finite loss (nan) at step 5"),
            _run("d", "failed", None, 0.1, 0.0, reason="RuntimeError: boom", config={}),
            _run("e", "finished", _cls_test(0.95, 0.25), 12.0, 3000.0, notes=["amp is off on CPU"]),
        ],
    }


@pytest.fixture
def regression() -> dict[str, Any]:
    def reg(mse: float, r2: float) -> dict[str, Any]:
        return {"loss": mse / 100, "mse": mse, "rmse": math.sqrt(mse), "mae": mse / 50, "r2": r2, "n": 89}

    return {
        "status": "finished",
        "preset": {"name": "reg"},
        "dataset": {"name": "diabetes", "task": "regression", "n_classes": 0},
        "device": "cpu",
        "runs": [
            _run("mse", "finished", reg(3000.0, 0.45), 2.0, 1000.0),
            _run("l1", "finished", reg(2800.0, 0.50), 3.0, 900.0),
            _run("bad", "diverged", None, 0.2, 50000.0),
        ],
    }


def test_summary_rows_classification(classification: dict[str, Any]) -> None:
    rows = summary_rows(classification)
    assert [r["name"] for r in rows] == ["a", "b", "c", "d", "e"]
    assert all(tuple(r) == CLASSIFICATION_COLUMNS for r in rows)
    a = rows[0]
    assert a["accuracy"] == 0.90 and a["test_loss"] == 0.30 and a["samples_per_s"] == 5000.0
    assert a["wall_time_s"] == 10.0 and a["best_epoch"] == 3
    assert rows[1]["roc_auc"] is None
    assert rows[2]["accuracy"] is None and rows[2]["test_loss"] is None and rows[2]["wall_time_s"] == 0.5


def test_summary_rows_regression_and_non_finite(regression: dict[str, Any]) -> None:
    regression["runs"][0]["test"]["mae"] = float("nan")
    rows = summary_rows(regression)
    assert all(tuple(r) == REGRESSION_COLUMNS for r in rows)
    assert rows[0]["mse"] == 3000.0 and rows[0]["mae"] is None
    assert rows[1]["r2"] == 0.50


def test_best_per_column_directions_ties_and_exclusions(classification: dict[str, Any]) -> None:
    best = best_per_column(summary_rows(classification), "multiclass")
    assert best["accuracy"] == {"b", "e"}  # a tie shares the best; early_stopped counts
    assert best["test_loss"] == {"b"}  # lower is better
    assert best["wall_time_s"] == {"b"}  # c (0.5 s, diverged) and d (failed) never win
    assert best["samples_per_s"] == {"a"}  # c is faster but diverged
    assert best["roc_auc"] == {"a", "e"}  # None ignored
    assert "best_epoch" not in best and "name" not in best and "status" not in best


def test_best_per_column_regression(regression: dict[str, Any]) -> None:
    best = best_per_column(summary_rows(regression), "regression")
    assert best["mse"] == {"l1"} and best["rmse"] == {"l1"} and best["r2"] == {"l1"}
    assert best["samples_per_s"] == {"mse"}  # the diverged run's rate does not count
    assert best_result(regression) == "r2 0.5000 (l1)"


def test_rates_have_one_form_at_every_size() -> None:
    from optlab.runs.formatting import format_rate

    assert [format_rate(v) for v in (0.4, 950, 999.4, 999.6, 5700, 14_300, 999_949, 999_950, 1.25e6)] == [
        "0", "950", "999", "1.0k", "5.7k", "14.3k", "999.9k", "1.0M", "1.2M"]


def test_single_ranked_run_is_not_highlighted(classification: dict[str, Any]) -> None:
    classification["runs"] = classification["runs"][:1]
    assert best_per_column(summary_rows(classification), "multiclass") == {}


def test_markdown_bolds_best_values_and_describes_runs(classification: dict[str, Any]) -> None:
    md = to_markdown(classification)
    assert md.startswith("# optlab report: demo\n")
    assert "> A demo.\n> Second line." in md
    assert "digits (multiclass, 10 classes)" in md and "**Device:** cpu" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    header, rows = table[0], {line.split(" | ")[0][2:]: line for line in table[1:]}
    assert header.startswith("| run | status | accuracy")
    assert "**0.9500**" in rows["b"] and "**0.9500**" in rows["e"]  # best accuracy, tied
    assert "**0.2000**" in rows["b"]  # lowest test loss
    assert "**5.0k**" in rows["a"]  # highest samples/s
    assert "**" not in rows["c"] and "**" not in rows["d"]
    assert "0.9000" in rows["a"] and "**0.9000**" not in rows["a"]
    assert "optimizer sgd(lr=0.05, momentum=0.9), scheduler cosine, batch size 64, epochs 3" in md
    assert "init `abcdef0123456789`" in md
    assert "**diverged:** non-finite loss (nan) at step 5" in md
    assert "**failed:** RuntimeError: boom" in md
    assert "## Notes\n\n- **e:** amp is off on CPU\n" in md
    assert "ROC-AUC undefined" in md
    assert "positive class" not in md.lower()  # multiclass metrics are macro averages, of no one class


def test_reports_say_a_note_once_per_configuration_not_once_per_seed(classification: dict[str, Any]) -> None:
    from optlab.runs.html import to_html

    fused = "not fused: momentum differs"
    runs = []
    for group, notes in (("adam", ["lr is a multiplier", fused]), ("sgd", [fused])):
        for seed in range(3):
            config = {"optimizer": {"name": group, "lr": 0.1}, "group": group, "seed": seed}
            runs.append(_run(f"{group}@s{seed}", "finished", _cls_test(0.9, 0.3), 1.0, 100.0,
                             config=config, notes=list(notes)))
    runs[-1]["notes"].append("only this seed")
    classification["runs"] = runs
    md = to_markdown(classification)
    notes = md.split("## Notes\n\n")[1].split("\n\n")[0].splitlines()
    assert notes == [f"- **all runs:** {fused}", "- **adam (3 seeds):** lr is a multiplier",
                     "- **sgd@s2:** only this seed"]
    assert md.count("lr is a multiplier") == 1 and md.count(fused) == 1
    html = to_html(classification, {})
    assert html.count("lr is a multiplier") == 1 and html.count("only this seed") == 1
    assert "<li>Note, adam (3 seeds): lr is a multiplier</li>" in html


def test_csv_matches_summary_rows(classification: dict[str, Any]) -> None:
    parsed = list(csv.DictReader(io.StringIO(to_csv(classification))))
    rows = summary_rows(classification)
    assert len(parsed) == len(rows)
    for got, want in zip(parsed, rows, strict=True):
        assert list(got) == list(want)
        for key, value in want.items():
            if value is None:
                assert got[key] == ""
            elif isinstance(value, str):
                assert got[key] == value
            else:
                assert float(got[key]) == value  # full precision, not the display rounding


def test_json_is_the_document_with_nan_as_null(classification: dict[str, Any]) -> None:
    doc = copy.deepcopy(classification)
    doc["runs"][2]["progress"] = {"train_loss": float("nan")}
    text = to_json(doc)
    parsed = json.loads(text)
    assert parsed["runs"][2]["progress"]["train_loss"] is None
    assert parsed["runs"][0] == classification["runs"][0]
    assert "NaN" not in text


def test_write_reports_and_read_run_dir(tmp_path: Path, classification: dict[str, Any]) -> None:
    (tmp_path / "results.json").write_text(to_json(classification))
    results, bad = read_run_dir(tmp_path)  # no events.jsonl: falls back to results.json
    assert bad == [] and results == classification
    write_reports(tmp_path, results, charts=False)
    assert (tmp_path / "report.md").read_text() == to_markdown(classification)
    assert not (tmp_path / "charts").exists() and not (tmp_path / "report.html").exists()
    assert (tmp_path / "metrics.csv").read_text() == to_csv(classification)
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_run_dir_rejects_other_dirs(tmp_path: Path) -> None:
    from optlab.errors import RunDirError

    with pytest.raises(RunDirError, match="not a run directory"):
        read_run_dir(tmp_path)
    with pytest.raises(RunDirError, match="not a run directory"):
        read_run_dir(tmp_path / "missing")


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("accuracy", 0.123456, "0.1235"),
        ("test_loss", None, "-"),
        ("wall_time_s", 12.34, "12.3s"),
        ("wall_time_s", 125.0, "2m 05s"),
        ("samples_per_s", 812.4, "812"),
        ("samples_per_s", 41234.0, "41.2k"),
        ("best_epoch", 7, "7"),
        ("status", "diverged", "diverged"),
    ],
)
def test_format_value(column: str, value: Any, text: str) -> None:
    assert format_value(column, value) == text


def test_config_summary_of_an_unstarted_run() -> None:
    assert config_summary({}) == "not started"


def _placed(doc: dict[str, Any], gpus: list[str | None]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for run, gpu in zip(doc["runs"], gpus, strict=False):
        device = "cuda:0" if gpu else "cpu"
        run["placement"] = {"backend": "processes", "host": "box", "device": device, "gpu": gpu, "pid": 1}
    return doc


def test_mixed_gpu_models_are_warned_in_every_report(classification: dict[str, Any]) -> None:
    from rich.console import Console

    from optlab.console.tables import print_results
    from optlab.runs.html import to_html

    doc = _placed(classification, ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"])
    markdown = to_markdown(doc)
    assert "**Warning:** runs trained on 2 GPU models" in markdown
    assert "NVIDIA A100-SXM4-80GB: a, b; NVIDIA H100 80GB HBM3: c" in markdown
    assert "time-to-target are not comparable" in markdown
    console = Console(record=True, width=300)
    print_results(console, doc)
    assert "not comparable across them" in console.export_text()
    assert "GPU models (NVIDIA A100-SXM4-80GB: a, b; NVIDIA H100 80GB HBM3: c)" in to_html(doc, {})


@pytest.mark.parametrize("gpus", [[None, None], ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", None], []])
def test_one_gpu_model_or_none_is_not_warned(classification: dict[str, Any], gpus: list[str | None]) -> None:
    from rich.console import Console

    from optlab.console.tables import print_results

    doc = _placed(classification, gpus)
    assert "Warning" not in to_markdown(doc)
    console = Console(record=True, width=300)
    print_results(console, doc)
    assert "not comparable" not in console.export_text()


def test_a_run_that_diverged_mid_interval_is_no_several_evaluations_warning() -> None:
    """RunEnded counts the evaluations of the interval that diverged, the last report does not:
    the note compares steps and evaluations of one report, so plain SGD is never named."""
    from optlab.runs.reports import comparison_warnings, grad_evals_note

    def run(name: str, step: int, evals_then: int, evals_at_end: int, group: str | None = None) -> dict:
        return {"name": name, "config": {"group": group or name}, "grad_evals": evals_at_end,
                "progress": {"step": step, "grad_evals": evals_then}}

    diverged = {"runs": [run("sgd-lr1", 10, 10, 20), run("adam", 40, 40, 40)]}
    assert grad_evals_note(diverged) is None and comparison_warnings(diverged) == []
    seeds = {"runs": [run("lbfgs@s0", 10, 42, 42, "lbfgs"), run("lbfgs@s1", 10, 38, 38, "lbfgs"),
                      run("sgd@s0", 10, 10, 10, "sgd")]}
    assert grad_evals_note(seeds) == ("gradient evaluations per step: lbfgs 4.0 (the others 1): by steps or "
                                      "epochs these runs had more compute; compare them by wall time")
