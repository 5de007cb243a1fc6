"""The `optlab` command line end to end: compare, presets, runs, report, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from optlab.cli.main import app

QUICK = ["--set", "train.epochs=1", "--set", "data.train_limit=300"]
DIVERGENT = """
name = "divergent"
description = "One run with an absurd learning rate among normal ones."
[data]
dataset = "digits"
[train]
epochs = 1
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "boom"
optimizer = { name = "sgd", lr = 1e6 }
diverge_factor = 0  # the smoothed-loss rule would end it first: this preset tests the non-finite one
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder with no user presets, so only bundled ones are found."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTLAB_PRESETS", str(tmp_path / "no-user-presets"))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """`optlab compare quickstart --set train.epochs=2`, run once for the tests that read it."""
    out = tmp_path_factory.mktemp("quickstart") / "run"
    result = CliRunner().invoke(app, ["compare", "quickstart", "--set", "train.epochs=2", "--out", str(out)])
    return out, result


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


# ---------------------------------------------------------------- compare


def test_compare_quickstart_end_to_end(quickstart: tuple[Path, Any]) -> None:
    out, result = quickstart
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    names = ["sgd", "sgd-momentum", "sgd-momentum-cosine", "adam", "adam-bs128", "rmsprop"]
    assert [r["name"] for r in runs] == names
    n_test = results["dataset"]["n_test"]
    for run in runs:
        assert run["status"] == "finished", run
        assert [h["epoch"] for h in run["history"]] == [1, 2]
        for key in ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "loss"):
            assert isinstance(run["test"][key], float), (run["name"], key)
        with np.load(out / "runs" / run["name"] / "predictions.npz") as npz:
            assert npz["y_true"].shape == (n_test,)
            assert npz["y_pred"].shape == (n_test,)
            assert npz["y_prob"].shape == (n_test, 10)
    assert (out / "report.md").is_file() and (out / "metrics.csv").is_file()
    assert "**" in (out / "report.md").read_text()
    assert len(list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))) == 6
    assert str(out) in result.stderr


def test_compare_table_numbers_equal_results_json(quickstart: tuple[Path, Any]) -> None:
    out, result = quickstart
    results = json.loads((out / "results.json").read_text())
    rows = table_rows(result.stdout)
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    columns = [c.strip() for c in header.strip("┃").split("┃")]
    assert columns[:3] == ["run", "status", "accuracy"]
    for run in results["runs"]:
        cells = dict(zip(columns, rows[run["name"]], strict=True))
        assert cells["status"] == run["status"]
        for column, key in [
            ("accuracy", "accuracy"),
            ("f1", "f1"),
            ("roc auc", "roc_auc"),
            ("test loss", "loss"),
        ]:
            assert cells[column] == f"{run['test'][key]:.4f}"
        assert cells["best epoch"] == str(run["best_epoch"])


def test_compare_writes_a_reloadable_resolved_preset(quickstart: tuple[Path, Any]) -> None:
    from optlab.preset.loader import load_preset

    out, _ = quickstart
    again = load_preset(str(out / "preset.toml")).preset
    original = load_preset("quickstart", ["train.epochs=2"]).preset
    assert again == original


def test_compare_json_prints_only_the_results_document(tmp_path: Path) -> None:
    result = invoke("compare", *QUICK, "--out", "run", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == json.loads((tmp_path / "run" / "results.json").read_text())
    assert result.stdout == (tmp_path / "run" / "results.json").read_text()


def test_compare_csv_and_markdown_formats(tmp_path: Path) -> None:
    result = invoke("compare", *QUICK, "--out", "run", "--format", "csv", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == (tmp_path / "run" / "metrics.csv").read_text()
    result = invoke("report", "run", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert result.stdout == (tmp_path / "run" / "report.md").read_text()


def test_compare_default_run_dir_under_runs(tmp_path: Path) -> None:
    result = invoke("compare", *QUICK, "--quiet", "--format", "csv")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.endswith("-quickstart")
    assert (run_dir / "results.json").is_file()


def test_divergent_run_is_a_result(tmp_path: Path) -> None:
    (tmp_path / "divergent.toml").write_text(DIVERGENT)
    result = invoke("compare", "divergent.toml", "--out", "run")
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())["runs"]}
    assert runs["boom"]["status"] == "diverged"
    assert "non-finite" in runs["boom"]["reason"]
    assert runs["sgd"]["status"] == runs["adam"]["status"] == "finished"
    assert table_rows(result.stdout)["boom"][1] == "diverged"
    assert "**diverged:** non-finite" in (tmp_path / "run" / "report.md").read_text()


TOML_SYNTAX_ERROR = 'name = "x"\n[train\nepochs = 1\n'


def test_binary_results_name_the_positive_class(tmp_path: Path) -> None:
    """scikit-learn's breast-cancer data labels malignant 0 and benign 1, so the binary precision,
    recall, F1 and specificity are about benign: every table says so, by name."""
    result = invoke("compare", "binary-breast-cancer", "--set", "train.epochs=1", "--out", "out")
    assert result.exit_code == 0, result.output
    assert json.loads(Path("out/results.json").read_text())["dataset"]["class_names"] == ["malignant", "benign"]
    said = "positive class (precision, recall, F1, specificity): benign (label 1)"
    assert said in " ".join(result.stdout.split())  # the caption may wrap
    assert f"\n\nP{said[1:]}.\n" in Path("out/report.md").read_text()
    assert f'<p class="note">P{said[1:]}.</p>' in Path("out/report.html").read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-preset"], "no-such-preset"),
        (["quickstart", "--set", "train.epochs=0"], "train.epochs"),
        (["quickstart", "--set", "train.epoch=1"], "did you mean 'epochs'"),
        (["quickstart", "--set", "train.nope=1"], "unknown key 'nope'"),
        (["quickstart", "--set", "trainepochs"], "'trainepochs': expected key=value"),
        (["quickstart", "--set", "runs.sgd.optimizer.name=sgdd"], "'sgdd' (did you mean 'sgd'?); known: sgd, adam, adamw"),
        (["broken.toml"], "line 2, column"),
        (["quickstart", "--device", "gpu"], "--device 'gpu'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "broken.toml").write_text(TOML_SYNTAX_ERROR)
    result = invoke("compare", *args, "--out", "out")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert result.stderr.startswith("optlab: error: ")
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_non_empty_out_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = invoke("compare", *QUICK, "--out", "out")
    assert result.exit_code == 2
    assert "not empty" in result.stderr and "Traceback" not in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_an_existing_file_as_out_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text("mine")
    result = invoke("compare", *QUICK, "--out", "ok.toml")
    assert result.exit_code == 2, result.output
    assert result.stderr == "optlab: error: ok.toml: exists and is not a directory; --out must name a new or empty directory\n"
    assert (tmp_path / "ok.toml").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.toml"]


@pytest.mark.parametrize("how", ["file", "--set"])
def test_a_preset_name_cannot_put_the_run_dir_outside_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           how: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    name = "x/../../../escaped"
    if how == "file":
        (work / "esc.toml").write_text(f'name = "{name}"\n[data]\ndataset = "digits"\n[[runs]]\nname = "a"\n')
        result = invoke("compare", "esc.toml", *QUICK)
    else:
        result = invoke("compare", "quickstart", *QUICK, "--set", f"name={name}")
    assert result.exit_code == 2, result.output
    assert "name: a preset name may hold only letters, digits and - _ . +" in result.stderr
    assert repr(name) in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "escaped").exists()
    assert sorted(p.name for p in work.iterdir()) == (["esc.toml"] if how == "file" else [])


def test_cuda_requested_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = invoke("compare", "--device", "cuda", "--out", "out")
    assert result.exit_code == 2
    assert "CUDA is not available" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unavailable_dataset_leaves_no_run_dir(tmp_path: Path) -> None:
    sets = [
        "--set",
        "data.dataset=mnist",
        "--set",
        f"data.root={tmp_path / 'nodata'}",
        "--set",
        "data.download=false",
    ]
    result = invoke("compare", "quickstart", *sets, "--out", "out/run")
    assert result.exit_code == 2, result.output
    assert "mnist" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_keyboard_interrupt_exits_130_with_partial_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optlab.console.progress import ConsoleProgress
    from optlab.training.events import EpochEnded

    original = ConsoleProgress.handle
    fired: list[bool] = []

    def handle(self: ConsoleProgress, event: Any) -> None:
        original(self, event)
        if isinstance(event, EpochEnded) and not fired:
            fired.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(ConsoleProgress, "handle", handle)
    result = invoke("compare", "quickstart", "--set", "train.epochs=3", "--out", "run", "--format", "csv")
    assert result.exit_code == 130, result.output
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["status"] == "interrupted"
    statuses = [r["status"] for r in doc["runs"]]
    assert statuses and all(s == "stopped" for s in statuses)
    assert (tmp_path / "run" / "report.md").is_file()
    assert result.stdout == (tmp_path / "run" / "metrics.csv").read_text()


def test_run_entry_point_turns_errors_into_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "optlab", "compare", "no-such-preset"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("optlab: error: unknown preset 'no-such-preset'")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# ---------------------------------------------------------------- report and runs


def test_report_rebuilds_from_events(tmp_path: Path, quickstart: tuple[Path, Any]) -> None:
    src, _ = quickstart
    run_dir = tmp_path / "copy"
    shutil.copytree(src, run_dir)
    expected_csv = (run_dir / "metrics.csv").read_text()
    (run_dir / "report.md").unlink()
    (run_dir / "metrics.csv").unlink()
    (run_dir / "results.json").unlink()  # the events alone are enough
    result = invoke("report", str(run_dir), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == expected_csv == (run_dir / "metrics.csv").read_text()
    assert (run_dir / "report.md").is_file()
    table = invoke("report", str(run_dir))
    assert table.exit_code == 0 and set(table_rows(table.stdout)) >= {"sgd", "rmsprop"}


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_report_writes_back_a_missing_or_corrupt_results_json(
    tmp_path: Path, quickstart: tuple[Path, Any], damage: str
) -> None:
    src, _ = quickstart
    run_dir = tmp_path / "copy"
    shutil.copytree(src, run_dir)
    original = json.loads((run_dir / "results.json").read_text())
    if damage == "missing":
        (run_dir / "results.json").unlink()
    else:
        (run_dir / "results.json").write_text('{"status": "runn')  # cut off mid-write by hand
    result = invoke("report", str(run_dir), "--format", "json")
    assert result.exit_code == 0, result.output
    rebuilt = json.loads((run_dir / "results.json").read_text())
    assert rebuilt == json.loads(result.stdout)
    assert rebuilt["status"] == original["status"] == "finished"
    assert [(r["name"], r["status"], r["history"], r["test"]) for r in rebuilt["runs"]] == [
        (r["name"], r["status"], r["history"], r["test"]) for r in original["runs"]
    ]
    assert not list(run_dir.glob(".*.tmp"))


def test_report_without_events_reads_results_json_and_never_rewrites_it(
    tmp_path: Path, quickstart: tuple[Path, Any]
) -> None:
    src, _ = quickstart
    run_dir = tmp_path / "copy"
    shutil.copytree(src, run_dir)
    (run_dir / "events.jsonl").unlink()
    (run_dir / "report.md").unlink()
    written = (run_dir / "results.json").read_bytes()
    result = invoke("report", str(run_dir), "--format", "json", "--no-charts")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(written)
    assert (run_dir / "results.json").read_bytes() == written
    assert (run_dir / "report.md").is_file()


def test_report_of_a_non_run_dir(tmp_path: Path) -> None:
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 2
    assert "not a run directory" in result.stderr and "Traceback" not in result.output


def test_runs_lists_run_dirs_and_tolerates_broken_ones(tmp_path: Path, quickstart: tuple[Path, Any]) -> None:
    src, _ = quickstart
    shutil.copytree(src, tmp_path / "runs" / "good")
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "results.json").write_text("{not json")
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    good = rows[str(Path("runs") / "good")]
    assert good[1] == "quickstart" and "6 finished" in good[3] and good[4].startswith("accuracy 0.")
    assert rows[str(Path("runs") / "broken")][3] == "unreadable"
    empty = invoke("runs", "--dir", "nowhere")
    assert empty.exit_code == 0 and "no run directories" in empty.stderr


# ---------------------------------------------------------------- presets


def test_presets_list_marks_shadowed_names(tmp_path: Path) -> None:
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "quickstart.toml").write_text(
        'description = "My own quickstart. Longer text."\n[[runs]]\nname = "a"\n'
    )
    result = invoke("presets", "list")
    assert result.exit_code == 0, result.output
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in result.stdout.splitlines()]
    quick = [r for r in rows if r[0] == "quickstart"]
    assert quick[0][1:] == ["project", "My own quickstart."]
    assert quick[1][1].startswith("bundled (shadowed by project)")
    assert any(r[0] == "regression-diabetes" and r[1] == "bundled" for r in rows)


def test_presets_show() -> None:
    from optlab.preset.loader import find_preset

    result = invoke("presets", "show", "quickstart")
    assert result.exit_code == 0
    path = find_preset("quickstart")
    assert result.stdout == path.read_text()
    assert str(path) in result.stderr and "bundled" in result.stderr
    missing = invoke("presets", "show", "nope")
    assert missing.exit_code == 2 and "unknown preset 'nope'" in missing.stderr


def test_presets_validate(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(DIVERGENT)
    (tmp_path / "bad.toml").write_text(TOML_SYNTAX_ERROR)
    ok = invoke("presets", "validate", "good.toml")
    assert ok.exit_code == 0 and ok.stdout == "ok: good.toml (3 runs)\n"
    mixed = invoke("presets", "validate", "good.toml", "bad.toml")
    assert mixed.exit_code == 2
    assert "ok: good.toml (3 runs)" in mixed.stdout
    assert "bad.toml" in mixed.stderr and "line 2, column" in mixed.stderr
    (tmp_path / "seeded.toml").write_text(DIVERGENT.replace("epochs = 1", "epochs = 1\nseeds = [0, 1]"))
    seeded = invoke("presets", "validate", "seeded.toml")
    assert seeded.stdout == "ok: seeded.toml (3 runs, 6 after sweeps and seeds)\n"


def test_presets_schema() -> None:
    result = invoke("presets", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "runs" in schema["properties"] and "runs" in schema["required"]
    # Names come from the registries, not from a list kept by hand in the schema.
    from optlab import registry

    for definition, prop, kind in (("OptimizerConfig", "name", "optimizer"), ("DataConfig", "dataset", "dataset")):
        assert schema["$defs"][definition]["properties"][prop]["examples"] == registry.names(kind)


# ---------------------------------------------------------------- the app itself


def test_help_and_presets_list_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from optlab.cli.main import app\n"
        "for args in (['--help'], ['presets', 'list'], ['compare', '--help']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('torch', 'numpy', 'textual') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_version() -> None:
    from optlab import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"optlab {__version__}"


def test_no_command_without_the_tui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optlab.tui.app", None)  # makes the import fail
    result = invoke()
    assert result.exit_code == 1
    assert "not available" in result.stderr and result.stderr.count("\n") == 1


def test_console_progress_handles_every_event_kind() -> None:
    from rich.console import Console

    from optlab.console.progress import ConsoleProgress
    from optlab.training.events import (
        EpochEnded,
        ExperimentEnded,
        ExperimentStarted,
        Progress,
        RunEnded,
        RunStarted,
    )

    buf = io.StringIO()
    sink = ConsoleProgress(Console(file=buf, force_terminal=False, width=120))
    sink.handle(ExperimentStarted(run="", run_names=["a", "bb"]))
    sink.handle(RunStarted(run="a", spec={"epochs": 2}, total_steps=20))
    sink.handle(Progress(run="a", step=10, epoch=1, train_loss=0.5, samples_per_s=1234.0))
    sink.handle(EpochEnded(run="a", epoch=1, step=10))
    sink.handle(RunEnded(run="a", status="finished", epochs_completed=2, step=20))
    sink.handle(RunEnded(run="bb", status="failed", reason="RuntimeError: boom"))
    sink.handle(ExperimentEnded(run=""))
    sink.close()
    sink.close()
    text = buf.getvalue()
    assert "bb: failed (RuntimeError: boom)" in text
    assert "epoch 2/2" in text and "finished" in text


def test_help_shows_no_type_beside_flags() -> None:
    for args in (["--help"], ["compare", "--help"], ["runs", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
        assert result.exit_code == 0 and "--help" in result.stdout
        assert "<bool>" not in result.stdout, args
    assert "<int range>" in invoke("compare", "--help").stdout  # options that take a value keep theirs


def test_plugin_before_a_command_loads_for_it(tmp_path: Path, fresh_registry: Any) -> None:
    (tmp_path / "early.py").write_text(
        "def tiny(input_shape, n_outputs):\n    raise NotImplementedError\n"
        "def register(registry):\n    registry.model('early-model', tiny)\n"
    )
    result = invoke("--plugin", "early.py", "plugins", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "early-model" in result.stdout
    missing = invoke("--plugin", "missing.py", "runs")
    assert missing.exit_code == 2 and missing.stderr == "optlab: error: --plugin missing.py: no such file\n"
