"""Is `optlab lr-find` fast, and is its suggestion a good learning rate? (issue 12)

    python benchmarks/lr_find_bench.py speed   [--json OUT]
    python benchmarks/lr_find_bench.py quality [--preset quickstart] [--json OUT]

speed: `optlab lr-find PRESET` (every run) against `optlab compare PRESET`, one process each,
start-up included, one after the other on the same machine; the ratio is what counts.

quality: the range test of every run, then the run trained as the preset says (epochs, batch
size, schedule) with its suggested learning rate and with a grid around it (x 10^-1, 10^-0.5,
10^0.5, 10^1) plus the preset's own lr, all side by side in one `compare`-style experiment;
the suggestion's best validation accuracy is compared with the grid's best (target: within
2 points on every run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)  # decades around the suggestion
TARGET_POINTS = 2.0


def _timed(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optlab", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def speed(preset: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        lr_find_s = _timed(["lr-find", preset, "-q", "-f", "json", "--device", "cpu", "--out", "lf"], cwd)
        compare_s = _timed(["compare", preset, "-q", "-f", "json", "--device", "cpu", "--out", "c"], cwd)
    return {"lr_find_s": lr_find_s, "compare_s": compare_s, "ratio": lr_find_s / compare_s}


def _grid_preset(preset: str, runs: list[dict[str, Any]]) -> tuple[str, dict[str, tuple[str, str]]]:
    """The preset's runs, each at the suggestion, around it and at its own lr, as one preset."""
    import tomli_w

    from optlab.preset.loader import load_preset

    raw = load_preset(preset).raw
    by_name = {r["name"]: r for r in raw["runs"]}
    out_runs, labels = [], {}
    for run in runs:
        lrs: dict[str, float] = {"preset": run["optimizer"]["lr"]}
        if run["suggestion"] is not None:
            lrs.update({f"{d:+.1f}": run["suggestion"] * 10**d for d in GRID})
        for i, (label, lr) in enumerate(lrs.items()):
            name = f"{run['name']}-g{i}"
            out_runs.append({**by_name[run["name"]], "name": name, "optimizer": {**run["optimizer"], "lr": lr}})
            labels[name] = (run["name"], label)
    raw = {**raw, "name": f"{raw['name']}-lrgrid", "runs": out_runs}
    return tomli_w.dumps(raw), labels


def quality(preset: str) -> dict[str, Any]:
    from optlab.experiment import run_experiment
    from optlab.preset.loader import load_preset_text
    from optlab.runs.results import ResultsBuilder

    with tempfile.TemporaryDirectory() as tmp:
        found = subprocess.run(
            [sys.executable, "-m", "optlab", "lr-find", preset, "-q", "-f", "json", "--device", "cpu", "--out", "lf"],
            cwd=tmp, check=True, capture_output=True, text=True,
        )
    runs = json.loads(found.stdout)["runs"]
    text, labels = _grid_preset(preset, runs)
    builder = ResultsBuilder()
    run_experiment(load_preset_text(text, "grid"), "cpu", sinks=[builder])
    results = {r["name"]: r for r in builder.doc["runs"]}
    table: dict[str, dict[str, Any]] = {}
    for name, (run, label) in labels.items():
        history = results[name].get("history") or []
        accs = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
        entry = table.setdefault(run, {"grid": {}})
        entry["grid"][label] = {
            "lr": results[name]["config"]["optimizer"]["lr"],
            "status": results[name]["status"],
            "best_val_accuracy": max(accs) if accs else None,
            "final_val_accuracy": accs[-1] if accs else None,
        }
    for run in runs:
        entry = table[run["name"]]
        entry["suggestion"] = run["suggestion"]
        entry["confidence"] = run["confidence"]
        best = max((g["best_val_accuracy"] or 0.0) for g in entry["grid"].values())
        mine = entry["grid"].get("+0.0", {}).get("best_val_accuracy")
        entry["grid_best"] = best
        entry["gap_points"] = None if mine is None else 100 * (best - mine)
        entry["within_target"] = mine is not None and 100 * (best - mine) <= TARGET_POINTS
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("speed", "quality"))
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OPTLAB_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = speed(args.preset) if args.what == "speed" else quality(args.preset)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
