"""The benchmark suite runs end to end in --quick mode and writes a complete JSON document.

No timing assertions: speed is what benchmarks/bench.py reports, not what tests check.
"""

from __future__ import annotations

import json
import shutil
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


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tui_cost_bench_runs_a_b_a_and_writes_every_ratio(tmp_path: Path) -> None:
    """One round of benchmarks/tui_cost.py (headless, the TUI in tmux, headless) on a tiny
    preset: the document it writes, not how fast anything was."""
    preset = tmp_path / "tiny.toml"
    preset.write_text('name = "tiny"\n[data]\ndataset = "digits"\ntrain_limit = 300\n[model]\nname = "mlp"\n'
                      'hidden = [16]\n[train]\nepochs = 2\nbatch_size = 64\nseed = 0\n'
                      '[[runs]]\nname = "sgd"\noptimizer = { name = "sgd", lr = 0.05 }\n'
                      '[[runs]]\nname = "adam"\noptimizer = { name = "adam", lr = 1e-3 }\n')
    out = tmp_path / "tui-cost.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "tui_cost.py"), "--preset", str(preset), "--rounds", "1",
         "--size", "100x30", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["size"] == "100x30" and doc["headless_options"] == doc["tui_options"] == []
    (round_,) = doc["rounds"]
    for side in ("headless_before", "tui", "headless_after"):
        assert round_[side]["mean_run_samples_per_s"] > 0 and round_[side]["wall_s"] > 0, side
    for key in ("per_run", "experiment"):
        assert round_[key] > 0 and round_[f"{key}_noise_floor"] > 0
        assert doc[key]["min"] == doc[key]["median"] == round_[key]
        assert doc[key]["pass_every_round"] == (round_[key] >= 0.95)


@pytest.mark.timeout(240)
def test_startup_bench_measures_every_command_against_the_bare_torch_import(tmp_path: Path) -> None:
    """One round of benchmarks/startup.py: every command timed and its ratio printed, not how
    fast any was."""
    out = tmp_path / "startup.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "startup.py"), "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["repeats"] == 1 and doc["median_s"]["torch"] > 0
    for name in ("help", "validate", "validate_cold", "compare_1_epoch", "compare_1_epoch_1_thread"):
        assert doc["ratios"][f"{name}_vs_torch"] > 0, name
        assert f"{name} " in proc.stdout
    assert {t["name"] for t in doc["targets"]} == {"validate_vs_torch", "compare_1_epoch_vs_torch"}
    assert "Targets" in proc.stdout and "x torch" in proc.stdout


@pytest.mark.timeout(300)
def test_driver_cost_bench_reports_the_drivers_share_and_the_two_worker_ratio(tmp_path: Path) -> None:
    """benchmarks/driver_cost.py on a few epochs: the driver's share of training under both
    checkpoint policies and the processes/local ratio are measured and printed (not judged)."""
    out = tmp_path / "driver.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "driver_cost.py"), "--epochs", "2", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for key in ("h_default", "h_every_epoch"):
        assert doc[key]["training_s"] > 0 and doc[key]["driver_s"] > 0, key
        assert doc[key]["driver_share"] == pytest.approx(doc[key]["driver_s"] / doc[key]["training_s"])
    assert len(doc["i"]["local_s"]) == len(doc["i"]["processes_s"]) == len(doc["i"]["processes_moves"]) == 2
    assert doc["i"]["processes_over_local"] > 0
    assert proc.stdout.count("(h) driver on local") == 2 and "(i) whole command" in proc.stdout


@pytest.mark.timeout(240)
def test_threads_bench_compares_all_cores_with_one_thread(tmp_path: Path) -> None:
    out = tmp_path / "threads.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "threads.py"), "--rounds", "1", "--seconds", "0.2",
         "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [(c["model"].split()[0], c["load"]) for c in doc["cases"]] == [
        ("digits", "as it is"), ("digits", "busy"), ("tutorial", "as it is"), ("tutorial", "busy")]
    assert all(c["all_over_one"] > 0 and c["one_thread_samples_per_s"] > 0 for c in doc["cases"])


@pytest.mark.timeout(240)
def test_tune_cost_bench_reports_the_overhead_per_trial(tmp_path: Path) -> None:
    """benchmarks/tune_cost.py on a tiny budget: the overhead outside training (Optuna, specs,
    driver, reports) is measured against training and printed as a share (not judged)."""
    pytest.importorskip("optuna")
    out = tmp_path / "tune-cost.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "tune_cost.py"), "--budget", "2", "--epochs", "1",
         "--final-seeds", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["trials"] == 2 * doc["candidates"] and doc["runs"] == 3 * doc["candidates"]
    assert doc["training_s"] > 0 and doc["overhead_s"] > 0 and doc["optuna_s"] > 0
    assert doc["overhead_share"] == pytest.approx(doc["overhead_s"] / doc["training_s"])
    assert "overhead outside training" in proc.stdout and "(target < 5%)" in proc.stdout


@pytest.mark.timeout(300)
def test_tune_backends_bench_compares_processes_with_local(tmp_path: Path) -> None:
    """benchmarks/tune_backends.py on a tiny study: both children run, the ratio is printed (not
    judged), and the two studies agree trial for trial (one torch thread on both backends)."""
    pytest.importorskip("optuna")
    out = tmp_path / "tune-backends.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "tune_backends.py"), "--budget", "1", "--set", "train.epochs=1",
         "--set", "tune.final_seeds=1", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["same_study"] and doc["runs"] > 0
    assert doc["speedup_wall"] == pytest.approx(doc["local_wall_s"] / doc["processes_wall_s"])
    assert "as fast" in proc.stdout
