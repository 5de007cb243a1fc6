"""benchmarks/tui_many.py runs end to end in --tiny mode (no timing assertions: speed is what
the benchmark reports, not what tests check)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "tui_many.py"


def test_tui_many_tiny_runs_every_phase(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("tui_many", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out.json"
    figures = module.main(["--tiny", "--json", str(out)])
    assert figures["runs"] == 16 and figures["focus_auto"] is True and figures["focus_after_f"] is False
    for key in ("live_focus", "live_all"):
        assert figures[key]["cpu_per_s"] >= 0.0
    for key in ("frames_focus", "frames_all"):
        assert figures[key]["frame_s"] > 0.0 and figures[key]["series_s"] >= 0.0
    assert json.loads(out.read_text())["runs"] == 16
