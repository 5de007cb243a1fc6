"""benchmarks/tui_tune_500.py runs end to end in --tiny mode (no timing assertions: speed is
what the benchmark reports, not what tests check)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "tui_tune_500.py"


def test_tui_tune_500_tiny_runs_every_phase(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("tui_tune_500", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out.json"
    figures = module.main(["--tiny", "--json", str(out)])
    # Every trial reached the table; the best-so-far chart has a point per ended trial after
    # each candidate's first completed one.
    assert figures["trials"] == 8 and figures["trials"] == json.loads(out.read_text())["trials"]
    assert 0 < figures["best_so_far_points"] <= 8
    assert figures["open_s"] > 0 and figures["live_cpu_per_s"] >= 0
