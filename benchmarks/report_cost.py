"""What the charts and report.html add to an experiment: `optlab compare` writes them after
training, so their cost is the time `write_reports` takes with charts beyond what it takes
without them (reading events.jsonl back, drawing the SVGs, the HTML page), plus importing the
modules that draw them. Measured on quickstart and on a 60-run sweep, against the wall time
of the same `optlab compare`, in one run on one machine.

    .venv/bin/python benchmarks/report_cost.py [--json report_cost.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SWEEP = """name = "sweep60"
description = "60 runs: three optimizers over a grid of 20 learning rates"
[data]
dataset = "digits"
train_limit = {train_limit}
[model]
name = "mlp"
hidden = [32]
[train]
epochs = {epochs}
batch_size = 64
seed = 0
[[runs]]
name = "sgd"
optimizer = {{ name = "sgd", momentum = 0.9 }}
[[runs]]
name = "adam"
optimizer = {{ name = "adam" }}
[[runs]]
name = "rmsprop"
optimizer = {{ name = "rmsprop" }}
[sweep]
"optimizer.lr" = [{lrs}]
"""


def _compare(preset: str, out: Path, *extra: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "optlab", "compare", preset, "--out", str(out), "-q", "-f", "json",
                           "--no-charts", *extra], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return time.perf_counter() - start


def _import_cost() -> float:
    """Seconds that importing the chart and HTML writers adds to a fresh process (median of 5)."""
    def once(module: str) -> float:
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)

    base = [once("optlab.runs.reports") for _ in range(5)]
    full = [once("optlab.runs.publish") for _ in range(5)]
    return max(0.0, statistics.median(full) - statistics.median(base))


def _write_cost(root: Path, repeats: int) -> dict[str, float]:
    from optlab.runs.publish import write_reports
    from optlab.runs.store import load_results

    results = load_results(root)
    write_reports(root, results)  # warm: the first call pays for lazy imports (measured apart)
    timings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(repeats):
        for key, charts in (("without", False), ("with", True)):
            start = time.perf_counter()
            write_reports(root, results, charts=charts)
            timings[key].append(time.perf_counter() - start)
    out = {key: statistics.median(values) for key, values in timings.items()}
    out["charts_s"] = max(0.0, out["with"] - out["without"])
    out["svg_bytes"] = float(sum(p.stat().st_size for p in (root / "charts").iterdir()))
    out["html_bytes"] = float((root / "report.html").stat().st_size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="2 epochs of quickstart, a short sweep (a smoke test)")
    args = parser.parse_args()
    report: dict[str, Any] = {"import_s": _import_cost()}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        quick = ("--set", "train.epochs=2") if args.quick else ()
        wall = _compare("quickstart", base / "quickstart", *quick)
        report["quickstart"] = {"compare_wall_s": wall, **_write_cost(base / "quickstart", 3 if args.quick else 7)}
        lrs = ", ".join(f"{10 ** (-4 + 3 * i / 19):.3g}" for i in range(20))
        (base / "sweep.toml").write_text(SWEEP.format(lrs=lrs, epochs=1 if args.quick else 3,
                                                      train_limit=200 if args.quick else 600))
        wall = _compare(str(base / "sweep.toml"), base / "sweep")
        report["sweep60"] = {"compare_wall_s": wall, **_write_cost(base / "sweep", 3)}
    for name in ("quickstart", "sweep60"):
        entry = report[name]
        entry["added_s"] = entry["charts_s"] + report["import_s"]
        entry["share_of_wall"] = entry["added_s"] / entry["compare_wall_s"]
    print(f"{'experiment':<12} {'compare wall':>13} {'charts+html':>12} {'share':>7} {'svg KiB':>8} {'html KiB':>9}")
    for name in ("quickstart", "sweep60"):
        e = report[name]
        print(f"{name:<12} {e['compare_wall_s']:>12.1f}s {e['added_s']:>11.3f}s {e['share_of_wall']:>6.1%} "
              f"{e['svg_bytes'] / 1024:>8.0f} {e['html_bytes'] / 1024:>9.0f}")
    print(f"(importing the chart and HTML writers: {report['import_s']:.3f}s of that)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
