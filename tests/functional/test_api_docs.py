"""docs/api.md's examples run as written: every python block, in order, in one namespace, in
an empty folder (the examples train the quickstart preset cut down to a few seconds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"


def test_the_api_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(API_DOC), "exec"), namespace)  # noqa: S102 - the documentation's own code
    out = capsys.readouterr().out
    assert "runs/q300: not comparable with runs/q: dataset n_train 300 vs 200" in out
    assert "runs/q/report.html" in out and (tmp_path / "runs" / "q-vs-q2" / "report.html").is_file()
