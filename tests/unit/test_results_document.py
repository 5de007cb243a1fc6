"""The results document's typed models: every results.json optlab has written parses, a newer
or foreign one is refused in one line, and docs/results-schema.json is the models' schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optlab.errors import RunDirError
from optlab.runs.document import RESULTS_VERSION, ResultsDocument, migrate
from optlab.runs.results import empty_run

SCHEMA = Path(__file__).parents[2] / "docs" / "results-schema.json"

# The shape of results.json as the first optlab wrote it (commit 69abf12): no torch version,
# placement, provenance, grad_evals, time to target, aggregates or samples_seen in history.
FIRST_DOCUMENT = {
    "results_version": 1, "optlab_version": "0.1.0", "status": "finished", "started_at": "2026-01-02T10:00:00+0000",
    "wall_time_s": 3.5, "preset": {"name": "old", "train": {"epochs": 1}}, "device": "cpu",
    "dataset": {"name": "digits", "task": "multiclass", "n_classes": 10, "input_shape": [1, 8, 8],
                "n_train": 300, "n_val": 288, "n_test": 359, "class_names": [str(i) for i in range(10)]},
    "runs": [
        {"name": f"sgd@s{seed}", "status": "finished", "reason": "", "config": {"seed": seed, "group": "sgd"},
         "n_params": 9610, "init_fingerprint": "ab", "data_fingerprint": "cd", "notes": [], "steps_per_epoch": 5,
         "total_steps": 5, "epochs_completed": 1, "best_epoch": 1, "wall_time_s": 0.2, "train_samples_per_s": 1500.0,
         "progress": None,
         "history": [{"epoch": 1, "train_loss": 2.2, "train_accuracy": 0.2, "val_loss": 2.1, "val_accuracy": None,
                      "lr": 0.05, "epoch_s": 0.2}],
         "test": {"loss": 2.0, "accuracy": 0.3 + seed / 10, "n": 359}}
        for seed in (0, 1)
    ],
}


def test_the_first_documents_shape_parses_with_the_fields_added_since_at_their_defaults() -> None:
    doc = ResultsDocument.parse(FIRST_DOCUMENT)
    run = doc.runs[0]
    assert run.history[0].samples_seen is None and run.history[0].val_accuracy is None
    assert run.placement is None and run.grad_evals == 0 and run.time_to_target is None
    assert run.test is not None and run.test.accuracy == pytest.approx(0.3)
    # The migration computes what a document of today holds: the aggregates over seeds.
    assert doc.aggregates is not None and doc.aggregates.groups[0].group == "sgd"
    assert doc.aggregates.groups[0].test["accuracy"].n == 2
    assert "aggregates" not in FIRST_DOCUMENT  # the input is left as it was


def test_an_empty_run_and_unknown_fields_parse() -> None:
    doc = ResultsDocument.parse({**FIRST_DOCUMENT, "runs": [empty_run("a")], "from_the_future": {"x": 1}})
    assert doc.runs[0].status == "pending"
    assert doc.model_extra == {"from_the_future": {"x": 1}}


def test_a_newer_or_foreign_document_is_refused_in_one_line() -> None:
    with pytest.raises(RunDirError, match=r"x.json: written by a newer optlab \(results_version 99; this one reads up to 1\)"):
        migrate({**FIRST_DOCUMENT, "results_version": RESULTS_VERSION + 98}, "x.json")
    with pytest.raises(RunDirError, match="no results_version"):
        ResultsDocument.parse({"runs": []})
    with pytest.raises(RunDirError, match=r"not a results document optlab can read \(runs.0.history.0.epoch"):
        ResultsDocument.parse({**FIRST_DOCUMENT, "runs": [{"name": "a", "history": [{"epoch": "first"}]}]})


def test_docs_results_schema_is_the_models_schema() -> None:
    """Regenerate with `optlab results schema > docs/results-schema.json`."""
    assert json.loads(SCHEMA.read_text()) == ResultsDocument.model_json_schema()
