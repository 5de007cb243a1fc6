"""The benchmark suite runs end to end in --quick mode and writes a complete JSON document.

No timing assertions: speed is what benchmarks/bench.py reports, not what tests check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
CONTENDERS = ("tutorial", "preloaded", "engine", "side_by_side", "sequential", "compare_headless")
RATIOS = (
    "engine_vs_tutorial",
    "engine_vs_preloaded",
    "engine_peak_share",
    "side_by_side_vs_sequential",
    "rss_4_minus_1_mb",
    "help_s",
    "presets_list_s",
    "processes_vs_local",
)


def run_quick(tmp_path: Path, device: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--quick", "--json", str(out), "--device", device],
        capture_output=True, text=True, cwd=REPO, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.timeout(180)
def test_quick_bench_writes_every_contender_and_ratio(tmp_path: Path) -> None:
    proc, doc = run_quick(tmp_path, "cpu")

    assert doc["mode"] == "quick" and doc["matmul_peak_gflops"] > 0
    for name in CONTENDERS:
        assert doc["contenders"][name]["samples_per_s"] > 0, name
    tui = doc["contenders"]["tui"]  # measured when the TUI can run headless, else explained
    assert tui["samples_per_s"] > 0 if tui.get("available") else tui["reason"].startswith("n/a")

    for key in RATIOS:
        assert isinstance(doc["ratios"][key], float), key
    verdicts = {t["name"]: t for t in doc["targets"]}
    assert set(RATIOS) <= set(verdicts)
    assert all(t["pass"] in (True, False) for k, t in verdicts.items() if k in RATIOS)

    for runs in ("one_run", "four_runs"):
        assert doc["memory"][runs]["peak_rss_mb"] > 0
    assert doc["cli"]["help_s"] > 0 and doc["cli"]["presets_list_s"] > 0
    assert doc["cli"]["help_imports_torch"] is False
    assert "Targets" in proc.stdout and "engine_vs_tutorial" in proc.stdout


@pytest.mark.gpu
@pytest.mark.timeout(180)
def test_quick_bench_on_cuda(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    _, doc = run_quick(tmp_path, "cuda")
    assert doc["machine"]["device"] == "cuda" and doc["contenders"]["engine"]["samples_per_s"] > 0
    assert doc["memory"]["four_runs"]["cuda_max_allocated_mb"] > 0
    assert "engine_vs_tutorial_cuda" in {t["name"] for t in doc["targets"]}
