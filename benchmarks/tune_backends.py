"""`optlab tune` on `processes --devices cpu,cpu` against `local` (issue 18), one run each:

    python benchmarks/tune_backends.py [--preset quickstart] [--budget 16] [--fuse auto] [--set KEY=VALUE ...]
                                       [--json FILE]

Each is a real `python -m optlab tune PRESET --budget N --device cpu --threads 1` child (one
torch thread per training process: the numbers do not depend on the backend), into a fresh run
directory. Reported: the child's wall time (start-up included: imports, dataset, the workers),
the study's own wall time (tune.json's `wall_time_s`: asking, training and telling, the final
seeds), their ratios (local / processes: above 1 is faster on processes), and whether the two
studies agree trial for trial (params and values). The ceiling on two cores is what two
independent single-thread processes get over one (docs/benchmarks.md, scale-out (f): 1.7 to
2.0x on this VM when quiet); on a machine shared with other work, less.
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

REPO = Path(__file__).resolve().parents[1]


def tune_once(root: Path, preset: str, budget: int, fuse: str, sets: list[str], backend: list[str]) -> dict[str, Any]:
    args = [sys.executable, "-m", "optlab", "tune", preset, "--budget", str(budget), "--device", "cpu",
            "--threads", "1", "--fuse", fuse, "--out", str(root), "-q", *backend]
    for item in sets:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    tune = json.loads((root / "tune.json").read_text(encoding="utf-8"))
    trials = {c["name"]: [(t["params"], t["value"]) for t in c["trials"]] for c in tune["candidates"]}
    return {"wall_s": wall, "study_s": tune["wall_time_s"], "trials": trials,
            "runs": sum(len(v) for v in trials.values()) + sum(len(c["finals"]) for c in tune["candidates"])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--fuse", default="auto")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        local = tune_once(Path(tmp) / "local", args.preset, args.budget, args.fuse, args.sets, [])
        procs = tune_once(Path(tmp) / "procs", args.preset, args.budget, args.fuse, args.sets,
                          ["--backend", "processes", "--devices", "cpu,cpu"])
    r = {
        "preset": args.preset, "budget": args.budget, "fuse": args.fuse, "sets": args.sets, "runs": local["runs"],
        "local_wall_s": local["wall_s"], "processes_wall_s": procs["wall_s"],
        "local_study_s": local["study_s"], "processes_study_s": procs["study_s"],
        "speedup_wall": local["wall_s"] / procs["wall_s"], "speedup_study": local["study_s"] / procs["study_s"],
        "same_study": local["trials"] == procs["trials"], "load_before": load, "load_after": os.getloadavg()[0],
    }
    print(f"tune {r['preset']} --budget {r['budget']} --fuse {r['fuse']} {' '.join(r['sets'])}: {r['runs']} runs; "
          f"load average {r['load_before']:.1f} -> {r['load_after']:.1f}")
    print(f"local {r['local_wall_s']:.1f} s (study {r['local_study_s']:.1f} s), processes cpu,cpu "
          f"{r['processes_wall_s']:.1f} s (study {r['processes_study_s']:.1f} s): processes {r['speedup_wall']:.2f}x "
          f"as fast ({r['speedup_study']:.2f}x on the study's own time); same study: {r['same_study']}")
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
