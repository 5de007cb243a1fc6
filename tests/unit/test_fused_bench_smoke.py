"""benchmarks/fused.py runs end to end in --quick mode and prints every ratio (no timing
assertions: speed is what the benchmark reports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


@pytest.mark.timeout(240)
def test_quick_fused_bench_prints_its_ratios(tmp_path: Path) -> None:
    out = tmp_path / "fused.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fused.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for key in ("a_8_optimizers", "e_8_optimizers_dropout", "b_16_sgd_lrs", "b_16_sgd_lrs_as_trials", "c_tutorial_mlp"):
        assert doc[key]["ratio"] > 0 and doc[key]["cpu_ratio"] > 0 and f"{key}: fused " in proc.stdout
    assert set(doc["d_rss_mb"]) == {"1", "2"} and "RSS (MB) training 1/2 fused runs: loaded " in proc.stdout
    for figures in doc["d_rss_mb"].values():
        assert figures["peak"] >= figures["loaded"] > 100 and figures["added"] == figures["peak"] - figures["loaded"]


@pytest.mark.timeout(120)
def test_fused_tolerance_on_quickstart_for_one_epoch(tmp_path: Path) -> None:
    # The trust figures' script: quickstart's five batch-64 runs fuse (dropout included), each
    # ends with the unfused run's random state and within the documented weight tolerance.
    out = tmp_path / "tol.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fused_tolerance.py"), "--epochs", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert sorted(doc) == ["adam", "rmsprop", "sgd", "sgd-momentum", "sgd-momentum-cosine"]
    for name, r in doc.items():
        assert r["rng_equal"] and r["weights_share"] <= 1e-5 and r["test_acc_samples"] <= 1, name
