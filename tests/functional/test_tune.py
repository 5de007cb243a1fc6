"""`optlab tune`: equal budgets per candidate, the study in the run directory (real Optuna on
SQLite), the final seeds ranked, and bad input refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optlab.cli.main import app
from optlab.tuning.report import expected_best

optuna = pytest.importorskip("optuna")

TINY = """
name = "tiny"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 3
batch_size = 32
[tune]
budget = 4
final_seeds = 2
parallel = 1
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""


def _tune(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    preset = tmp_path / "tiny.toml"
    preset.write_text(text)
    result = CliRunner().invoke(app, ["tune", str(preset), "--out", str(tmp_path / "out"), "-q", *args])
    return result.exit_code, result.output


def test_expected_best_is_the_expected_maximum_of_n_draws() -> None:
    assert expected_best([3.0, 1.0, 2.0]) == pytest.approx([2.0, 1 * 1 / 9 + 2 * 3 / 9 + 3 * 5 / 9, 72 / 27])
    assert expected_best([3.0, 1.0, 2.0], higher=False)[-1] == pytest.approx((19 * 1 + 7 * 2 + 1 * 3) / 27)


def test_tune_gives_every_candidate_the_same_budget_with_pruning_and_keeps_the_study(tmp_path: Path) -> None:
    code, output = _tune(tmp_path, TINY, "--prune", "median", "--write-preset", str(tmp_path / "tuned.toml"))
    assert code == 0, output
    root = tmp_path / "out"
    tune = json.loads((root / "tune.json").read_text())
    budgets = {c["name"]: c["budget"] for c in tune["candidates"]}
    assert {b["trials"] for b in budgets.values()} == {4}
    assert sum(b["pruned"] for b in budgets.values()) >= 1  # pruned trials count toward the budget
    for c in tune["candidates"]:
        pruned = [t for t in c["trials"] if t["status"] == "pruned"]
        assert all(t["epochs"] < 3 for t in pruned)
        assert c["budget"]["epochs"] == sum(t["epochs"] for t in c["trials"])
        assert c["budget"]["steps"] == sum(t["steps"] for t in c["trials"]) > 0
        assert len(c["expected_best"]) == 4 and len(c["finals"]) == 2
    # Every trial is in the study, with its values: the record a dashboard or a script reads.
    for name in ("sgd", "adam"):
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'study.db'}")
        assert len(study.trials) == 4
        for trial in study.trials:
            assert trial.state.name in ("COMPLETE", "PRUNED")
            assert trial.value is not None and "lr" in trial.params
            assert trial.user_attrs["run"] == f"{name}#{trial.number}"
    # Both candidates use their optimizer's default lr range around their own lr: the same
    # quasi-random sequence, so each trial's lr is the same multiple of its centre.
    lrs = {c["name"]: [t["params"]["lr"] for t in c["trials"]] for c in tune["candidates"]}
    assert [v / 0.05 for v in lrs["sgd"]] == pytest.approx([v / 1e-3 for v in lrs["adam"]])
    # One run directory: trials and final seeds alike are ordinary runs with events.
    runs = {r["name"]: r for r in json.loads((root / "results.json").read_text())["runs"]}
    assert {"sgd#0", "adam#3", "sgd@s1", "adam@s2"} <= set(runs)
    # Selection on validation data only: trials never evaluate the test split, final runs do.
    trials = [name for name in runs if "#" in name]
    assert all(runs[name]["test"] is None and runs[name]["config"]["evaluate_test"] is False for name in trials)
    assert not any((root / "runs" / name / "predictions.npz").exists() for name in trials)
    assert runs["sgd@s1"]["test"]["accuracy"] > 0 and (root / "runs" / "sgd@s1" / "predictions.npz").is_file()
    assert tune["ranking"]["order"] and set(tune["ranking"]["order"]) == {"sgd", "adam"}
    assert "Expected best validation score" in (root / "report.md").read_text()
    tuned = (tmp_path / "tuned.toml").read_text()
    assert "search" not in tuned and "[tune]" not in tuned
    # --write-preset never overwrites.
    code, output = _tune(tmp_path, TINY, "--write-preset", str(tmp_path / "tuned.toml"), "--out", str(tmp_path / "o2"))
    assert code == 2 and "never overwrites" in output


def test_a_diverged_trial_counts_at_the_worst_value(tmp_path: Path) -> None:
    text = TINY.replace('[[runs]]\nname = "adam"\noptimizer = { name = "adam", lr = 1e-3 }\n', "") + (
        'search = { lr = [1e6, 0.05] }\n'
    )
    code, output = _tune(tmp_path, text, "--budget", "2", "--sampler", "grid", "--final-seeds", "1")
    assert code == 0, output
    (sgd,) = json.loads((tmp_path / "out" / "tune.json").read_text())["candidates"]
    statuses = sorted(t["status"] for t in sgd["trials"])
    assert statuses == ["complete", "diverged"]
    diverged = next(t for t in sgd["trials"] if t["status"] == "diverged")
    assert diverged["value"] == 0.0 and sgd["budget"]["diverged_or_failed"] == 1
    assert sgd["best"]["params"]["lr"] == 0.05


@pytest.mark.parametrize(
    ("args", "search", "expected"),
    [
        (["--budget", "0"], "", "--budget 0"),
        (["--sampler", "bayes"], "", "unknown sampler 'bayes'"),
        (["--prune", "hyper"], "", "unknown pruner 'hyper'"),
        ([], "search = { lr = { low = 0.0, high = 0.1, log = true } }", "log = true needs low > 0"),
        ([], "search = { lr = { low = 0.1, high = 0.01 } }", "must be below high"),
        ([], "search = {}", "empty search space"),
        ([], "search = { momentum = [0.0, 0.9] }", "runs (adam): search.momentum: optimizer 'adam' takes no 'momentum'"),
        ([], "search = { lr = [] }", "empty list"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(
    tmp_path: Path, args: list[str], search: str, expected: str
) -> None:
    code, output = _tune(tmp_path, TINY + search + "\n", *args)
    assert code == 2, output
    assert expected in output and len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "out").exists()


def test_tune_without_the_extra_names_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    # Optuna made unimportable, as where the `tune` extra is not installed.
    code = "import sys; sys.modules['optuna'] = None; from optlab.cli.main import run; run()"
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", code, "tune", "quickstart", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "optlab: error: optlab tune needs Optuna, which is not installed: pip install 'optlab[tune]'"
    ]
    assert not out.exists()
