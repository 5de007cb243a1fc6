"""Fused training on the ray backend (issue 19) against unfused ray, in one run:

    python benchmarks/ray_fused.py [--epochs 10] [--rounds 2] [--cpus 2] [--json FILE]

benchmarks/fused.py's case (a), 8 digits MLPs (64-128-10, batch 64) with different optimizers,
on a local Ray of `--cpus` CPUs, each actor asking for 1 CPU and training with one torch
thread: `--fuse auto` (the 8 runs one group, cut into a part per actor the cluster fits: 2
actors of 4 runs on 2 CPUs) against `--fuse off` (8 actors, `--cpus` at a time). Samples/s is every run's training samples over the wall time of `Runner.run`, the
actors' start (a Python with torch and the dataset each) included, as a user waits for it;
rounds alternate unfused/fused, best round of each kept. Printed apart (means over the
rounds): the actors' start, from `Runner.run`'s start to the first `run_started`, and the
training span, from the first `run_started` to the last `run_ended` (the unfused runs' later
actors start within it, one run's resources at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from fused import OPTIMIZERS, preset  # noqa: E402


class Times:
    def __init__(self) -> None:
        self.first_start: float | None = None
        self.last_end = 0.0

    def handle(self, event: Any) -> None:
        if self.first_start is None and type(event).__name__ == "RunStarted":
            self.first_start = time.perf_counter()
        if type(event).__name__ == "RunEnded":
            self.last_end = time.perf_counter()


def train(text: str, fuse: bool) -> tuple[float, float, float]:
    """(samples per second of every run together over Runner.run's wall time, seconds until
    the first run started, seconds from then to the last run's end)."""
    from optlab.data.datasets import load_dataset
    from optlab.preset.loader import load_preset_text
    from optlab.training.ray_executor import RayExecutor
    from optlab.training.ray_fused import FusedRayExecutor
    from optlab.training.runner import Runner

    loaded = load_preset_text(text)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data, "cpu")
    options: dict[str, Any] = {"gpus_per_run": 0, "cpus_per_run": 1, "threads": 1}
    executor = FusedRayExecutor(data, specs, **options) if fuse else RayExecutor(data, **options)
    times = Times()
    t0 = time.perf_counter()
    ended = Runner(specs, data, "cpu", [times], executor=executor).run()
    wall = time.perf_counter() - t0
    assert all(e.status == "finished" for e in ended.values()), {k: e.reason for k, e in ended.items()}
    samples = len(specs) * specs[0].epochs * data.x_train.shape[0]
    first = times.first_start or t0
    return samples / wall, first - t0, times.last_end - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--limit", type=int, default=None, help="train_limit (default: all of digits)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import ray

    # Ray's workers import optlab from this checkout, installed or not.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(address="local", num_cpus=args.cpus, num_gpus=0, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        text = preset("digits", [128], args.epochs, OPTIMIZERS, args.limit)
        best = {"unfused": 0.0, "fused": 0.0}
        start: dict[str, list[float]] = {"unfused": [], "fused": []}
        span: dict[str, list[float]] = {"unfused": [], "fused": []}
        for _ in range(args.rounds):
            for mode in ("unfused", "fused"):
                rate, first, training = train(text, mode == "fused")
                best[mode] = max(best[mode], rate)
                start[mode].append(first)
                span[mode].append(training)
    finally:
        ray.shutdown()
    doc = {"unfused_samples_per_s": best["unfused"], "fused_samples_per_s": best["fused"],
           "ratio": best["fused"] / best["unfused"],
           "first_start_s": {mode: sum(v) / len(v) for mode, v in start.items()},
           "training_span_s": {mode: sum(v) / len(v) for mode, v in span.items()}}
    print(f"ray, 8 runs, {args.epochs} epochs, {args.cpus} CPUs: fused {doc['fused_samples_per_s']:.0f} samples/s, "
          f"unfused {doc['unfused_samples_per_s']:.0f}: {doc['ratio']:.2f}x; first run up after "
          f"{doc['first_start_s']['fused']:.1f} s fused, {doc['first_start_s']['unfused']:.1f} s unfused; "
          f"then to the last end {doc['training_span_s']['fused']:.1f} s fused, "
          f"{doc['training_span_s']['unfused']:.1f} s unfused")
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
