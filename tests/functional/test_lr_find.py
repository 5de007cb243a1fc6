"""`optlab lr-find` end to end: the curve, its record, isolation from compare, presets, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optlab.cli.main import app
from optlab.runs.lr_find_report import RUN_KEYS

SMALL = ["--set", "data.train_limit=300", "--steps", "40", "--start", "1e-5"]
COMPARE = ["--set", "train.epochs=1", "--set", "data.train_limit=300", "-q", "-f", "json"]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTLAB_PRESETS", str(tmp_path / "no-user-presets"))
    monkeypatch.setenv("NO_COLOR", "1")


def test_sgd_on_digits_climbs_to_divergence_and_records_it(tmp_path: Path) -> None:
    result = invoke("lr-find", "quickstart", "--run", "sgd", "--end", "10", *SMALL, "--out", "lf", "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    (run,) = doc["runs"]
    assert run["name"] == "sgd" and run["stopped"] == "diverged"
    assert "above 4x the best" in run["detail"]
    lrs = [p["lr"] for p in run["points"]]
    assert lrs[0] == 1e-5 and lrs == sorted(lrs) and lrs[-1] < 10
    assert run["confidence"] == "high" and 1e-3 < run["suggestion"] < run["min_loss_lr"]
    assert run["range"][0] < run["suggestion"] < run["range"][1]
    csv_lines = (tmp_path / "lf" / "lr_find.csv").read_text().splitlines()
    assert csv_lines[0] == "run,seed,step,lr,loss,smoothed" and len(csv_lines) == len(lrs) + 1
    assert "| sgd | sgd |" in (tmp_path / "lf" / "lr_find.md").read_text()
    assert "sgd" in result.stdout and "diverged" in result.stdout  # the table
    listed = invoke("runs", "--dir", ".")
    assert "lr-find: 1 of 1 suggested" in listed.stdout and "unreadable" not in listed.stdout


def test_json_output_has_the_promised_shape_and_repeats_exactly(tmp_path: Path) -> None:
    args = ["lr-find", "quickstart", "--run", "adam", "--run", "rmsprop", *SMALL, "-q", "-f", "json"]
    first = invoke(*args, "--out", "a")
    second = invoke(*args, "--out", "b")
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert first.stdout == second.stdout  # stdout is only the JSON, and it is deterministic
    doc = json.loads(first.stdout)
    assert [r["name"] for r in doc["runs"]] == ["adam", "rmsprop"]
    for run in doc["runs"]:
        assert set(RUN_KEYS) <= set(run)
        assert (run["suggestion"] is None) == (run["confidence"] == "low")
        assert set(run["points"][0]) == {"lr", "loss", "smoothed"}
    assert (tmp_path / "a" / "lr_find.json").read_text() == (tmp_path / "b" / "lr_find.json").read_text()


def test_same_fingerprints_as_compare_and_a_later_compare_is_unchanged(tmp_path: Path) -> None:
    before = invoke("compare", "quickstart", *COMPARE, "--out", "c1")
    assert before.exit_code == 0, before.output
    found = invoke("lr-find", "quickstart", *SMALL, "-q", "-f", "json", "--out", "lf")
    assert found.exit_code == 0, found.output
    after = invoke("compare", "quickstart", *COMPARE, "--out", "c2")
    assert after.exit_code == 0, after.output

    def runs(path: str) -> dict[str, Any]:
        return {r["name"]: r for r in json.loads((tmp_path / path / "results.json").read_text())["runs"]}

    one, two = runs("c1"), runs("c2")
    for name, run in one.items():
        for key in ("init_fingerprint", "data_fingerprint", "status", "test"):
            assert run[key] == two[name][key], (name, key)
        def untimed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in epoch.items() if not k.endswith("_s")} for epoch in history]

        assert untimed(run["history"]) == untimed(two[name]["history"]), name
    for entry in json.loads(found.stdout)["runs"]:
        assert entry["init_fingerprint"] == one[entry["name"]]["init_fingerprint"]
        assert entry["data_fingerprint"] == one[entry["name"]]["data_fingerprint"]
        assert entry["provenance"] == one[entry["name"]]["provenance"]
        assert entry["plugin_fingerprint"] == one[entry["name"]]["plugin_fingerprint"]


def test_write_preset_validates_trains_and_never_overwrites(tmp_path: Path) -> None:
    result = invoke(
        "lr-find", "quickstart", "--run", "sgd", "--run", "adam", *SMALL, "-q", "--out", "lf",
        "--write-preset", "tuned.toml",
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "tuned.toml").read_text()
    doc = json.loads((tmp_path / "lf" / "lr_find.json").read_text())
    suggested = {r["name"]: r["suggestion"] for r in doc["runs"]}
    sgd_lr = float(f"{suggested['sgd']:.3g}")
    assert f"lr = {sgd_lr!r}" in text
    assert f"# lr-find: sgd: suggested lr {suggested['sgd']:.3g} (was 0.05)" in text
    assert "# lr-find: rmsprop: not tested (swept or not selected); lr kept" in text
    trained = invoke("compare", "tuned.toml", *COMPARE, "--out", "c")
    assert trained.exit_code == 0, trained.output
    assert {r["status"] for r in json.loads(trained.stdout)["runs"]} == {"finished"}

    again = invoke("lr-find", "quickstart", "--run", "sgd", *SMALL, "-q", "--out", "lf2", "--write-preset", "tuned.toml")
    assert again.exit_code == 2 and "exists" in again.output
    assert (tmp_path / "tuned.toml").read_text() == text
    assert not (tmp_path / "lf2").exists()


def test_seeds_give_a_median_and_a_spread(tmp_path: Path) -> None:
    result = invoke("lr-find", "quickstart", "--run", "adam", *SMALL, "--seeds", "2", "-q", "-f", "json", "--out", "lf")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert [s["seed"] for s in run["seeds"]] == [0, 1]
    assert run["seeds"][0]["init_fingerprint"] != run["seeds"][1]["init_fingerprint"]
    assert run["spread_decades"] is not None and run["median_suggestion"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "1", "--end", "0.1"], "--start 1 must be below --end 0.1"),
        (["--steps", "5"], "--steps 5: at least 10 steps"),
        (["--run", "sgdd"], "--run 'sgdd': no such run in the preset; runs: sgd, sgd-momentum"),
        (["--loss", "test"], "--loss 'test': expected train or val"),
        (["--run", "sgd", "--set", "runs.sgd.optimizer.name=lbfgs"], "optimizer 'lbfgs' needs a closure"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("lr-find", "quickstart", *args, "--out", "lf")
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "lf").exists()


PLUGIN = """
import torch


def register(registry):
    registry.optimizer("closure-sgd", torch.optim.SGD, needs_closure=True)
    registry.optimizer("multiplier-sgd", torch.optim.SGD, lr_is_multiplier=True)
"""


def optlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "optlab", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)


def test_plugin_optimizers_closure_refused_multiplier_warned(tmp_path: Path) -> None:
    """Through --plugin, as compare takes it: capabilities decide, provenance is recorded."""
    (tmp_path / "opts.py").write_text(PLUGIN)
    plugin = ["--plugin", "opts.py", "--run", "sgd", *SMALL]
    refused = optlab("lr-find", "quickstart", *plugin, "--set", "runs.sgd.optimizer.name=closure-sgd", "--out", "a",
                     cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "optimizer 'closure-sgd' needs a closure" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "a").exists()
    warned = optlab("lr-find", "quickstart", *plugin, "--set", "runs.sgd.optimizer.name=multiplier-sgd", "-q", "-f",
                    "json", "--out", "b", cwd=tmp_path)
    assert warned.returncode == 0, warned.stderr
    (run,) = json.loads(warned.stdout)["runs"]
    assert any("treats lr as a multiplier" in note for note in run["notes"])
    assert run["provenance"]["optimizer"]["origin"] == "file" and len(run["plugin_fingerprint"]) == 16


def test_short_budget_and_short_ladder_say_why_they_ended(tmp_path: Path) -> None:
    """A run of one epoch has only its own steps (never mislabelled diverged), and too few
    points give no number; a ladder that ends before the loss moves gives none either."""
    short = invoke(
        "lr-find", "quickstart", "--run", "adam", "--set", "data.train_limit=300", "--set", "train.epochs=1",
        "-q", "-f", "json", "--out", "a",
    )
    assert short.exit_code == 0, short.output
    (run,) = json.loads(short.stdout)["runs"]
    n = len(run["points"])  # one epoch of the ~240 training samples at batch 64
    assert run["stopped"] == "data_exhausted" and 3 <= n <= 5
    assert f"the run's {n} steps (1 epoch) ended before lr reached 10" == run["detail"]
    assert run["confidence"] == "low" and run["suggestion"] is None
    assert f"only {n} usable points (needs 20)" in " ".join(run["notes"])
    low = invoke(
        "lr-find", "quickstart", "--run", "adam", "--set", "data.train_limit=300", "--start", "1e-7", "--end", "1e-6",
        "--steps", "30", "--loss", "val", "-q", "-f", "json", "--out", "b",
    )
    assert low.exit_code == 0, low.output
    (run,) = json.loads(low.stdout)["runs"]
    assert run["stopped"] == "end_lr" and len(run["points"]) == 30
    assert run["points"][-1]["lr"] == 1e-6
    assert run["confidence"] == "low" and run["suggestion"] is None
    assert "never descends" in " ".join(run["notes"])


def test_runs_tested_so_far_are_written_as_they_are_done_and_go_with_the_end(tmp_path: Path) -> None:
    """A live view (the TUI) draws each run's curve once it is tested: lr_find.partial.json
    holds the runs so far while the test goes on, and is gone once lr_find.json is written."""
    from optlab.data.datasets import load_dataset
    from optlab.preset.loader import load_preset
    from optlab.runs.lr_find_report import LR_FIND_PARTIAL, document, write_lr_find, write_lr_find_partial
    from optlab.runs.lr_find_run import select_groups, settings_dict, test_groups
    from optlab.training.lr_find import RangeTestSettings

    loaded = load_preset("quickstart", ["data.train_limit=300"])
    groups = select_groups(loaded.resolved_runs("cpu"), ["sgd", "adam"])
    data = load_dataset(loaded.preset.data)
    settings = RangeTestSettings(start=1e-5, steps=40)
    seen: list[list[str]] = []

    def so_far(entries: list[dict[str, Any]]) -> None:
        write_lr_find_partial(tmp_path, document("quickstart", "cpu", {}, entries), len(groups))
        partial = json.loads((tmp_path / LR_FIND_PARTIAL).read_text())
        assert partial["partial"] == {"tested": len(entries), "of": 2}
        seen.append([r["name"] for r in partial["runs"]])

    entries = test_groups(groups, data, "cpu", settings, quiet=True, on_entry=so_far)
    assert seen == [["sgd"], ["sgd", "adam"]]
    write_lr_find(tmp_path, document("quickstart", "cpu", settings_dict(settings), entries))
    assert not (tmp_path / LR_FIND_PARTIAL).exists() and (tmp_path / "lr_find.json").is_file()
    # And the command leaves none behind either.
    result = invoke("lr-find", "quickstart", "--run", "sgd", "--run", "adam", *SMALL, "--out", "lf", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "lf").iterdir()) == [
        "lr_find.csv", "lr_find.json", "lr_find.md", "preset.toml",
    ]


@pytest.mark.parametrize(
    ("names", "reasons_in_table"),
    [(["sgd", "adam"], True), (["adamw-cosine-warmup-long", "sgd-momentum-nesterov-0.9", "a"], False)],
)
def test_the_table_keeps_run_names_whole_at_80_columns(names: list[str], reasons_in_table: bool) -> None:
    from rich.console import Console

    from optlab.cli.lr_find_view import print_lr_find

    stopped = "the smoothed loss passed 4x its best (diverged)"
    doc = {"preset": "p", "runs": [
        {"name": n, "suggestion": 3.2e-3, "range": [1e-4, 1e-2], "min_loss_lr": 1.2e-2, "confidence": "high",
         "stopped": stopped, "points": [{}] * 87, "detail": "", "notes": []} for n in names]}
    console = Console(width=80, record=True, force_terminal=False)
    print_lr_find(console, doc)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = [line for line in lines if "0.0001 – 0.01" in line]
    assert [row.split()[0] for row in rows] == names  # each name whole, on its row, with its numbers
    assert all(row.split()[-1] == "87" for row in rows)
    below = [line for line in lines if line.startswith(f"{names[0]}: stopped: the smoothed loss")]
    assert bool(below) is not reasons_in_table
