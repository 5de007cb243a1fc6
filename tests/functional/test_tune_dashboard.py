"""The study a tune leaves opens in optuna-dashboard: the real dashboard server, started on the
run directory's study.db as docs/tune.md says, lists every candidate's study and its trials with
their params and values."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optlab.cli.main import app

pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard")

PRESET = """
name = "dash"
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [8]
[train]
epochs = 1
batch_size = 50
[tune]
budget = 2
final_seeds = 1
parallel = 1
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, deadline: float) -> dict:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return json.loads(answer.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_study_opens_in_optuna_dashboard(tmp_path: Path) -> None:
    (tmp_path / "dash.toml").write_text(PRESET)
    root = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", str(tmp_path / "dash.toml"), "--out", str(root), "-q"])
    assert result.exit_code == 0, result.output
    tune = json.loads((root / "tune.json").read_text())

    dashboard = shutil.which("optuna-dashboard") or str(Path(sys.executable).with_name("optuna-dashboard"))
    port = _free_port()
    server = subprocess.Popen([dashboard, f"sqlite:///{root / 'study.db'}", "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        summaries = _get(f"http://127.0.0.1:{port}/api/studies", deadline)["study_summaries"]
        studies = {s["study_name"]: s["study_id"] for s in summaries}
        assert set(studies) == {"sgd", "adam"}
        for candidate in tune["candidates"]:
            detail = _get(f"http://127.0.0.1:{port}/api/studies/{studies[candidate['name']]}", deadline)
            shown = {t["number"]: t for t in detail["trials"]}
            assert len(shown) == len(candidate["trials"]) == 2
            for number, trial in enumerate(candidate["trials"]):
                got = shown[number]
                assert got["state"] == "Complete"
                assert got["values"] == [pytest.approx(trial["value"])]
                params = {p["name"]: float(p["param_external_value"]) for p in got["params"]}
                # A "1-x log" parameter is sampled (and shown) as 1 - value (docs/tune.md).
                for name, value in trial["params"].items():
                    shown_value = params[name] if name in params else 1 - params[f"one_minus_{name}"]
                    assert shown_value == pytest.approx(value), name
                assert len(params) == len(trial["params"])
    finally:
        server.terminate()
        server.wait(timeout=10)
