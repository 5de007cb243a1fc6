"""Scale-out benchmarks (issue 11), run by `bench.py` or alone:

    python benchmarks/scaleout.py [--rounds N] [--epochs N]

(f) `processes` with two single-thread CPU workers against `local` (default torch threads) on
    a small-model preset (digits MLP): the experiment's training throughput, samples trained by
    all runs / training wall time, start-up (spawning workers, importing torch, loading data,
    building the runs) measured apart.
    The ceiling, measured in the same rounds: two plain processes, each training half of the
    runs with `local` and one thread, started together with no driver between them; what two
    cores give two independent single-thread jobs here (on a VM, two vCPUs may share a core).
    And `processes` with `--pace free` (each worker as fast as it can), against `local`.
(g) `ray` against `local` on one run with one thread each: the run's throughput as the driver
    sees it (samples / time from its RunStarted to its RunEnded), so the driver's round trips
    count. Needs the `ray` extra; skipped without it.

Rounds alternate A B C D E A B C D E; the ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from typing import Any

PRESET = """
name = "bench-scaleout"
[data]
dataset = "digits"
[model]
name = "mlp"
hidden = [128, 128]
dropout = 0.1
[train]
epochs = {epochs}
batch_size = 32
seed = 0
[[runs]]
name = "sgd"
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
[[runs]]
name = "adam"
optimizer = {{ name = "adam", lr = 1e-3 }}
[[runs]]
name = "rmsprop"
optimizer = {{ name = "rmsprop", lr = 1e-3 }}
[[runs]]
name = "adamw"
optimizer = {{ name = "adamw", lr = 1e-3 }}
"""


class Clock:
    """A sink that notes when runs start and end and how many samples they trained."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.samples: dict[str, int] = {}

    def handle(self, event: Any) -> None:
        from optlab.training.events import Progress, RunEnded, RunStarted

        now = time.perf_counter()
        if isinstance(event, RunStarted):
            self.started[event.run] = now
        elif isinstance(event, Progress):
            self.samples[event.run] = event.samples_seen
        elif isinstance(event, RunEnded):
            self.ended[event.run] = now

    def summary(self) -> dict[str, float]:
        all_started = max(self.started.values())
        train_s = max(self.ended.values()) - all_started
        samples = sum(self.samples.values())
        return {"startup_s": all_started - self.t0, "train_s": train_s, "samples": samples,
                "samples_per_s": samples / train_s}


def experiment(epochs: int, runs: int, executor_for: Any, pace: str = "even", pick: slice = slice(None),
               ready: Any = None) -> dict[str, float]:
    """The first `runs` runs of the preset (those of them `pick` picks) trained by the executor
    `executor_for(data)` makes; `ready()`, if given, is called once the data is loaded."""
    from optlab.data.datasets import load_dataset
    from optlab.preset.loader import load_preset_text
    from optlab.training.runner import Runner

    loaded = load_preset_text(PRESET.format(epochs=epochs))
    specs = loaded.resolved_runs("cpu")[:runs][pick]
    clock = Clock()
    data = load_dataset(loaded.preset.data)
    executor = executor_for(data)
    if ready is not None:
        ready()
    Runner(specs, data, "cpu", [clock], executor=executor, pace=pace).run()
    return clock.summary()


def local(threads: int | None = None) -> Any:
    def make(data: Any) -> Any:
        import torch

        from optlab.training.executor import LocalExecutor

        if threads:
            torch.set_num_threads(threads)
        return LocalExecutor(data, "cpu")
    return make


def processes(data: Any) -> Any:
    from optlab.training.processes import ProcessExecutor

    return ProcessExecutor(["cpu", "cpu"], threads=1)


def ray_one_thread(data: Any) -> Any:
    from optlab.training.ray_executor import RayExecutor

    return RayExecutor(data, gpus_per_run=0, cpus_per_run=1, threads=1)


def _half(epochs: int, runs: int, which: int, barrier: Any, results: Any) -> None:
    # Dealt as ProcessExecutor deals them; training starts together, start-up apart.
    results.put(experiment(epochs, runs, local(1), pick=slice(which, None, 2), ready=barrier.wait))


def two_independent(epochs: int, runs: int) -> dict[str, float]:
    """The ceiling for (f): two single-thread processes, half the runs each, no driver."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    jobs = [context.Process(target=_half, args=(epochs, runs, i, barrier, results)) for i in range(2)]
    for job in jobs:
        job.start()
    halves = [results.get(timeout=600) for _ in jobs]
    for job in jobs:
        job.join()
    samples = sum(h["samples"] for h in halves)
    train_s = max(h["train_s"] for h in halves)
    return {"train_s": train_s, "samples": samples, "samples_per_s": samples / train_s}


def measure(rounds: int = 2, epochs: int = 20, with_ray: bool = True) -> dict[str, Any]:
    import torch

    default_threads = torch.get_num_threads()
    doc: dict[str, Any] = {"rounds": rounds, "epochs": epochs, "torch_threads_default": default_threads}
    f_rounds = []
    for _ in range(rounds):  # A B C D E A B C D E
        a = experiment(epochs, 4, local(default_threads))
        b = experiment(epochs, 4, processes)
        c = experiment(epochs, 4, local(1))
        torch.set_num_threads(default_threads)
        d = two_independent(epochs, 4)
        e = experiment(epochs, 4, processes, pace="free")
        f_rounds.append({"local": a, "processes": b, "local_1_thread": c, "two_independent": d,
                         "processes_pace_free": e,
                         "ratio": b["samples_per_s"] / a["samples_per_s"],
                         "ratio_vs_1_thread": b["samples_per_s"] / c["samples_per_s"],
                         "ceiling_vs_1_thread": d["samples_per_s"] / c["samples_per_s"],
                         "share_of_ceiling": b["samples_per_s"] / d["samples_per_s"],
                         "pace_free_ratio": e["samples_per_s"] / a["samples_per_s"],
                         "pace_free_vs_1_thread": e["samples_per_s"] / c["samples_per_s"],
                         "pace_free_share_of_ceiling": e["samples_per_s"] / d["samples_per_s"]})
    doc["f_processes_vs_local"] = {
        "rounds": f_rounds,
        **{key: statistics.median(r[key] for r in f_rounds)
           # local at its default threads can collapse on a busy machine; one thread is the fair
           # floor; the ceiling is what two independent jobs get here
           for key in ("ratio", "ratio_vs_1_thread", "ceiling_vs_1_thread", "share_of_ceiling",
                       "pace_free_ratio", "pace_free_vs_1_thread", "pace_free_share_of_ceiling")},
    }
    if not with_ray:
        doc["g_ray_vs_local"] = {"skipped": "not asked for (bench.py --quick)"}
        return doc
    try:
        import ray
    except ImportError:
        doc["g_ray_vs_local"] = {"skipped": "the ray extra is not installed"}
        return doc
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        g_rounds = []
        for _ in range(rounds):
            a = experiment(epochs, 1, local(1))
            b = experiment(epochs, 1, ray_one_thread)
            g_rounds.append({"local": a, "ray": b, "ratio": b["samples_per_s"] / a["samples_per_s"]})
        doc["g_ray_vs_local"] = {"rounds": g_rounds, "ratio": statistics.median(r["ratio"] for r in g_rounds)}
    finally:
        ray.shutdown()
        torch.set_num_threads(default_threads)
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    doc = measure(args.rounds, args.epochs)
    text = json.dumps(doc, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
