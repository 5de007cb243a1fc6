"""The Python API end to end on a tiny preset: train through `optlab.compare`, read the typed
results, render the notebook table, write the reports, and compare run directories (refused
for a different dataset, accepted for the same), through the API and `optlab report A B --out`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import optlab
from optlab.api import Experiment, TableRow
from optlab.cli.main import app
from optlab.runs.combine import NotComparable
from optlab.runs.document import EpochRecord

TINY = {"train.epochs": 2, "data.train_limit": 200}


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Experiment]:
    """Two experiments on the same data (trained apart) and one on more training samples."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("api")
    return {
        "a": optlab.compare("quickstart", set=TINY, out=base / "a", charts=False),
        "b": optlab.compare("quickstart", set=TINY, out=base / "b", charts=False),
        "c": optlab.compare("quickstart", set={**TINY, "data.train_limit": 300}, out=base / "c", charts=False),
    }


def test_compare_trains_and_returns_typed_results(runs: dict[str, Experiment]) -> None:
    exp = runs["a"]
    assert exp.status == "finished" and set(exp.runs) >= {"adam", "sgd", "rmsprop"}
    history = exp.runs["adam"].history
    assert [h.epoch for h in history] == [1, 2] and isinstance(history[0], EpochRecord)
    assert history[-1].samples_seen == 400 and history.column("epoch") == [1, 2]
    test = exp.runs["adam"].test
    assert test is not None and 0.0 <= (test.accuracy or -1) <= 1.0 and test.n == exp.results.dataset.n_test
    assert exp.results.runs[0].placement is not None and exp.results.runs[0].placement.backend == "local"
    # Reading the directory back gives the same document.
    assert optlab.load(exp.path).results == exp.results  # type: ignore[arg-type]


def test_table_ranking_fingerprints_and_the_notebook_table(runs: dict[str, Experiment]) -> None:
    exp = runs["a"]
    rows = exp.table(frame="rows")
    assert isinstance(rows, list) and isinstance(rows[0], TableRow)
    assert [r.name for r in rows] == list(exp.runs) and rows[0].accuracy == exp.results.runs[0].test.accuracy  # type: ignore[union-attr]
    ranking = exp.ranking()
    assert ranking.metric == "accuracy" and ranking.order[0] in exp.runs
    prints = exp.fingerprints(frame="rows")
    assert {p.init_fingerprint for p in prints} == {exp.results.runs[0].init_fingerprint}  # one MLP, one seed
    html = exp._repr_html_()
    assert html.startswith('<div class="optlab">') and "<table" in html and "rmsprop" in html
    assert "<html" not in html and "<svg" not in html  # a fragment, no charts


def test_report_writes_what_optlab_report_writes(runs: dict[str, Experiment], tmp_path: Path) -> None:
    exp = runs["b"]
    path = exp.report(format="markdown", charts=False)
    assert path == exp.path / "report.md"  # type: ignore[operator]
    api_files = _tree(exp.path)  # type: ignore[arg-type]
    result = CliRunner().invoke(app, ["report", str(exp.path), "--no-charts", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert _tree(exp.path) == api_files  # type: ignore[arg-type]


def test_errors_are_optlab_errors_with_the_clis_message_and_nothing_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(optlab.OptlabError, match=r"^unknown preset 'no-such-preset'; known presets: "):
        optlab.compare("no-such-preset", out=tmp_path / "x")
    with pytest.raises(optlab.OptlabError, match=r"train.epochs: Input should be greater than or equal to 1"):
        optlab.compare("quickstart", set={"train.epochs": 0}, out=tmp_path / "y")
    with pytest.raises(optlab.OptlabError, match="not a run directory"):
        optlab.load(tmp_path / "nowhere")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert capsys.readouterr() == ("", "")


def test_combine_refuses_a_different_dataset_and_accepts_the_same(runs: dict[str, Experiment], tmp_path: Path) -> None:
    a, b, c = runs["a"], runs["b"], runs["c"]
    before = {k: _tree(e.path) for k, e in runs.items()}  # type: ignore[arg-type]
    with pytest.raises(NotComparable, match=rf"^{c.path}: not comparable with {a.path}: dataset n_train 300 vs 200 "
                                            r"\(--force keeps them, marked\)$"):
        optlab.combine([a, c])
    both = a + b
    assert both.results.combined is not None and both.results.combined.comparable
    # The same run names in two directories get the directory's name as a prefix.
    assert list(both.runs) == [f"a/{n}" for n in a.runs] + [f"b/{n}" for n in b.runs]
    path = both.report(out=tmp_path / "ab", charts=False, format="markdown")
    assert "from " + str(a.path) in path.read_text()
    assert optlab.load(tmp_path / "ab").results == both.results
    forced = optlab.combine([a, c], force=True)
    assert forced.results.combined is not None and forced.results.combined.forced
    assert "NOT comparable" in forced._repr_html_()
    assert {k: _tree(e.path) for k, e in runs.items()} == before  # type: ignore[arg-type]


def test_optlab_report_compares_run_directories(runs: dict[str, Experiment], tmp_path: Path) -> None:
    a, b, c = (str(runs[k].path) for k in "abc")
    before = {k: _tree(e.path) for k, e in runs.items()}  # type: ignore[arg-type]
    refused = CliRunner().invoke(app, ["report", a, c, "--out", str(tmp_path / "ac"), "--no-charts"])
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        f"optlab: error: {c}: not comparable with {a}: dataset n_train 300 vs 200 (--force keeps them, marked)"]
    assert not (tmp_path / "ac").exists()
    ok = CliRunner().invoke(app, ["report", a, b, "--out", str(tmp_path / "ab"), "--format", "markdown"])
    assert ok.exit_code == 0, ok.output
    assert "all runs comparable" in ok.output and "| a/adam |" in ok.output
    assert {"results.json", "report.md", "report.html", "metrics.csv"} <= {p.name for p in (tmp_path / "ab").iterdir()}
    forced = CliRunner().invoke(app, ["report", a, c, "--out", str(tmp_path / "acf"), "--force", "--no-charts",
                                      "--format", "markdown"])
    assert forced.exit_code == 0 and "NOT comparable (kept with --force): dataset n_train 300 vs 200" in forced.output
    assert CliRunner().invoke(app, ["report", a, b]).exit_code == 2  # several need --out
    assert {k: _tree(e.path) for k, e in runs.items()} == before  # type: ignore[arg-type]


def test_lr_find_reads_a_learning_rate_as_optlab_lr_find_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    result = optlab.lr_find("quickstart", set=TINY, runs=["adam"], steps=20, out=tmp_path / "lr")
    assert list(result.suggestions) == ["adam"] and result.runs[0].points and result.runs[0].points[0].lr > 0
    assert {"lr_find.json", "lr_find.md", "preset.toml"} <= {p.name for p in (tmp_path / "lr").iterdir()}
    with pytest.raises(optlab.OptlabError, match=r"^--run 'nope': no such run in the preset; runs: sgd, "):
        optlab.lr_find("quickstart", runs=["nope"], out=tmp_path / "lr2")
    assert capsys.readouterr() == ("", "")
