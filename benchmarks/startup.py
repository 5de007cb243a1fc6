"""Start-up cost of optlab's commands against a bare `python -c "import torch"` (issue 20).

    python benchmarks/startup.py [--repeats 7] [--json OUT] [--baseline CHECKOUT]

Each round runs every command once, in turn (interleaved), so a machine shared with other
work slows them all alike; the ratios are medians over the rounds, each command against the
bare torch import of the same run. `presets validate` is measured twice: with the run checks'
cache warm (a preset validated before: the usual case) and cold (an empty cache each time:
the first validation of a configuration builds the model, steps the optimizer, and so imports
torch and torch._dynamo). `--baseline` adds the same commands run from another checkout of
optlab (e.g. `git archive` of an older commit) to the same rounds: before and after measured
under the same load. Nothing here asserts a target; the verdicts are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGETS = {  # ratio name: (what, target: at most this many bare torch imports)
    "validate_vs_torch": ("`optlab presets validate quickstart`, checks cached", 1.5),
    "compare_1_epoch_vs_torch": ("`optlab compare quickstart --set train.epochs=1`", 2.2),
}


def _env(cache: Path, root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OPTLAB_CHECK_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    return env


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def commands(work: Path, epochs: int, baseline: Path | None) -> dict[str, tuple[list[str], str, Path]]:
    """name -> (argv, which check cache: warm or cold, the optlab checkout it runs)."""
    py = sys.executable
    optlab = [py, "-m", "optlab"]
    compare = [*optlab, "compare", "quickstart", "--set", f"train.epochs={epochs}", "--out", str(work / "run")]
    validate = [*optlab, "presets", "validate", "quickstart"]
    cmds = {
        "torch": ([py, "-c", "import torch"], "warm", REPO),
        "help": ([*optlab, "--help"], "warm", REPO),
        "validate": (validate, "warm", REPO),
        "validate_cold": (validate, "cold", REPO),
        "compare_1_epoch": (compare, "warm", REPO),
        # The same with one torch thread: on a machine whose cores other work shares, two
        # threads' waits on each other swing the training part by seconds, hiding the start-up.
        "compare_1_epoch_1_thread": ([*compare, "--threads", "1"], "warm", REPO),
    }
    if baseline is not None:
        cmds["baseline_validate"] = (validate, "warm", baseline)
        cmds["baseline_compare_1_epoch"] = (compare, "warm", baseline)
        cmds["baseline_compare_1_epoch_1_thread"] = ([*compare, "--threads", "1"], "warm", baseline)
    return cmds


def measure(repeats: int, epochs: int = 1, baseline: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="optlab-startup-") as tmp:
        work = Path(tmp)
        warm = work / "checks"
        cmds = commands(work, epochs, baseline)
        # Warm the check cache (and the OS's file cache) once, untimed.
        subprocess.run(cmds["validate"][0], env=_env(warm, REPO), cwd=work, capture_output=True, check=True)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for r in range(repeats):
            for name, (argv, cache, root) in cmds.items():
                check_dir = warm if cache == "warm" else work / f"cold-{r}"
                times[name].append(_timed(argv, _env(check_dir, root), work))
                if "compare" in name:
                    subprocess.run(["rm", "-rf", str(work / "run")], check=True)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    torch = medians["torch"]
    ratios = {f"{name}_vs_torch": medians[name] / torch for name in cmds if name != "torch"}
    # The spread of the bare import shows how noisy the machine was during the run.
    spread = (max(times["torch"]) - min(times["torch"])) / torch
    return {
        "repeats": repeats,
        "baseline": None if baseline is None else str(baseline),
        "load_average": os.getloadavg(),
        "nproc": os.cpu_count(),
        "median_s": medians,
        "all_s": times,
        "ratios": ratios,
        "torch_spread": spread,
        "targets": [
            {"name": k, "what": what, "target": f"<= {t}", "value": ratios[k], "pass": ratios[k] <= t}
            for k, (what, t) in TARGETS.items()
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="rounds of every command (median over them)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the compare (1: the issue's measure)")
    ap.add_argument("--json", type=Path, help="also write the document here")
    ap.add_argument("--baseline", type=Path, help="another optlab checkout to measure in the same rounds")
    args = ap.parse_args()
    doc = measure(args.repeats, args.epochs, args.baseline.resolve() if args.baseline else None)
    print(f"{args.repeats} interleaved rounds; bare `import torch` median {doc['median_s']['torch']:.2f} s "
          f"(spread {doc['torch_spread']:.0%} of it); load average {doc['load_average'][0]:.2f} on {doc['nproc']} cores")
    print(f"{'command':<34} {'median s':>9} {'x torch':>8}")
    for name, median in doc["median_s"].items():
        ratio = "" if name == "torch" else f"{doc['ratios'][f'{name}_vs_torch']:.2f}"
        print(f"{name:<34} {median:>9.2f} {ratio:>8}")
    print("Targets (ratios to the bare torch import of this run):")
    for t in doc["targets"]:
        print(f"  {t['name']:<26} {t['value']:.2f} {t['target']:<7} {'pass' if t['pass'] else 'FAIL'}  {t['what']}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
