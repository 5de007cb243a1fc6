"""What the driver costs beside training (issue 20), in one run of this script:

    python benchmarks/driver_cost.py [--epochs 300] [--rounds 1] [--json FILE]

(h) The driver's own time on `local`: the bundled `optimizers` preset (8 digits MLPs) at
    `--epochs` epochs with one torch thread, into a real run directory (events.jsonl,
    results.json, checkpoints at the default policy). Training is the time spent answering the
    executor's requests (every step, evaluation and checkpoint state); the driver is the rest
    of `Runner.run` plus closing the store: events, results.json, checkpoints written, pacing.
    Reported as the driver's share of training time (target < 5%), with the same figure under a
    checkpoint at every epoch end for comparison.
(i) The whole command, `optlab compare optimizers --set train.epochs=N -q`, with
    `--backend processes --devices cpu,cpu` against `local` (both one thread per training
    process, the default), rounds alternating A B B A; the ratio of wall times (target >= 1.5x).
    The machine's ceiling for two processes is in scaleout.py's (f). The processes command runs
    with the balancer's debug log on stderr (`optlab.balance`, one handler: nothing else
    changes), so the report counts the runs each processes command moved between its workers.
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


def driver_share(epochs: int, root: Path, every_epoch: bool) -> dict[str, float]:
    import tomli_w

    from optlab.experiment import prepare
    from optlab.preset.loader import load_preset
    from optlab.runs.control import FileControl
    from optlab.runs.store import RunStore, prepare_run_dir
    from optlab.training.checkpoint_policy import EVERY_EPOCH, CheckpointPolicy
    from optlab.training.executor import LocalExecutor
    from optlab.training.runner import Runner
    from optlab.training.threads import use_threads

    class TimedExecutor(LocalExecutor):
        """The local executor, timing the requests it answers (that is training)."""

        busy_s = 0.0

        def collect(self, timeout: float):  # type: ignore[no-untyped-def]
            if not self._queue:
                return super().collect(timeout)
            t0 = time.perf_counter()
            replies = super().collect(timeout)
            self.busy_s += time.perf_counter() - t0
            return replies

    use_threads(1)
    loaded = load_preset("optimizers", [f"train.epochs={epochs}"])
    specs, data, device = prepare(loaded, "cpu")
    prepare_run_dir(root)
    executor = TimedExecutor(data, device)
    policy = EVERY_EPOCH if every_epoch else CheckpointPolicy()
    t0 = time.perf_counter()
    store = RunStore(root, tomli_w.dumps(loaded.preset.model_dump(mode="json", exclude_none=True)))
    runner = Runner(specs, data, device, [store], FileControl(root), preset=loaded.preset.model_dump(mode="json"),
                    executor=executor, checkpoints=policy)
    runner.run()
    store.close()
    total = time.perf_counter() - t0
    driver = total - executor.busy_s
    return {"total_s": total, "training_s": executor.busy_s, "driver_s": driver,
            "driver_share": driver / executor.busy_s}


# `python -m optlab ...` with the balancer's moves logged to stderr, one line each.
LOGGED_OPTLAB = (
    "import logging, runpy, sys; log = logging.getLogger('optlab.balance'); log.setLevel(logging.DEBUG); "
    "log.addHandler(logging.StreamHandler()); sys.argv[0] = 'optlab'; "
    "runpy.run_module('optlab', run_name='__main__', alter_sys=True)"
)


def whole_command(epochs: int, folder: Path, backend: list[str]) -> tuple[float, int]:
    """The command's wall time, and how many runs the balancer moved (0 on local)."""
    out = folder / f"run-{time.monotonic_ns()}"
    optlab = [sys.executable, "-c", LOGGED_OPTLAB] if backend else [sys.executable, "-m", "optlab"]
    cmd = [*optlab, "compare", "optimizers", "--set", f"train.epochs={epochs}", "-q",
           "--device", "cpu", "--format", "json", "--out", str(out), *backend]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return time.perf_counter() - t0, sum(line.startswith("moved ") for line in done.stderr.splitlines())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="A B B A rounds of (i); 0 skips (i)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report["h_default"] = driver_share(args.epochs, folder / "h-default", every_epoch=False)
        report["h_every_epoch"] = driver_share(args.epochs, folder / "h-every", every_epoch=True)
        local: list[float] = []
        procs: list[float] = []
        moves: list[int] = []
        for _ in range(args.rounds):
            for contender in ("local", "processes", "processes", "local"):
                backend = ["--backend", "processes", "--devices", "cpu,cpu"] if contender == "processes" else []
                wall, moved = whole_command(args.epochs, folder, backend)
                (procs if contender == "processes" else local).append(wall)
                if backend:
                    moves.append(moved)
        if args.rounds:
            pairs = [(local[i], procs[i]) for i in range(len(local))]
            report["i"] = {"local_s": local, "processes_s": procs, "processes_moves": moves,
                           "processes_over_local": statistics.median(a / b for a, b in pairs)}
    for key, label in (("h_default", "default checkpoints (every 10 s)"), ("h_every_epoch", "a checkpoint every epoch")):
        h = report[key]
        print(f"(h) driver on local, {label}: {h['driver_s']:.2f} s beside {h['training_s']:.2f} s of training "
              f"= {100 * h['driver_share']:.1f}% (target < 5%)")
    i = report.get("i")
    if i is not None:
            print(f"(i) whole command, processes cpu,cpu vs local: {i['processes_over_local']:.2f}x "
              f"(local {statistics.median(i['local_s']):.1f} s, processes {statistics.median(i['processes_s']):.1f} s; "
              f"target >= 1.5x); runs moved by the balancer per processes command: {i['processes_moves']}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
