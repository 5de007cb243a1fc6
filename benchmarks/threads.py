"""The default thread count, by measurement (issue 20):

    python benchmarks/threads.py [--rounds 5] [--seconds 1.5] [--json FILE]

One optlab Trainer per model trains for about `--seconds` with 1 torch thread and with every
core, on two models: the digits MLP of the bundled presets (64-128-10, batch 64: the lab's
usual size) and the PyTorch tutorial's 784-512-512-10 MLP (batch 64, compute-bound on a CPU).
Each is measured on the machine as it is ("quiet") and with a busy loop on one core beside it
(another job on a shared machine). Rounds alternate the contenders (1, N, N, 1, ...); each
ratio is the median of per-round ratios of samples per second, N threads over 1.
optlab's default is one thread per training process: it should never lose on the small
model, busy or quiet.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = {
    "digits MLP 64-128-10": ("digits", "[128]", 64),
    "tutorial MLP 784-512-512-10": ("npz", "[512, 512]", 64),  # random 28x28 images, 10 classes
}


def _data_line(kind: str, folder: Path) -> str:
    if kind == "digits":
        return 'dataset = "digits"'
    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / "images.npz"
    np.savez(path, x_train=rng.random((6000, 784), dtype=np.float32), y_train=rng.integers(0, 10, 6000),
             x_test=rng.random((1000, 784), dtype=np.float32), y_test=rng.integers(0, 10, 1000))
    return f'dataset = "npz"\npath = "{path}"\ntask = "multiclass"'


def _spin(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def _trainer(data_line: str, hidden: str, batch: int) -> Any:
    from optlab.data.datasets import load_dataset
    from optlab.preset.loader import load_preset_text
    from optlab.training.trainer import Trainer

    text = (f'name = "threads"\n[data]\n{data_line}\n[model]\nname = "mlp"\nhidden = {hidden}\n'
            f'[train]\nepochs = 1000000\nbatch_size = {batch}\n[[runs]]\nname = "sgd"\n'
            'optimizer = { name = "sgd", lr = 0.01 }\n')
    loaded = load_preset_text(text)
    spec = loaded.resolved_runs("cpu")[0]
    return Trainer(spec, load_dataset(loaded.preset.data, "cpu"))


def _samples_per_s(trainer: Any, threads: int, seconds: float) -> float:
    import torch

    torch.set_num_threads(threads)
    trainer.advance()  # warm-up at this thread count
    seen, t0 = trainer.samples_seen, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.advance()
    return (trainer.samples_seen - seen) / (time.perf_counter() - t0)


def measure(rounds: int, seconds: float) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    report: dict[str, Any] = {"cores": cores, "cases": []}
    folder = Path(tempfile.mkdtemp())
    for label, (kind, hidden, batch) in MODELS.items():
        trainer = _trainer(_data_line(kind, folder), hidden, batch)
        for load in ("as it is", "busy"):
            stop = multiprocessing.Event()
            spinner = multiprocessing.Process(target=_spin, args=(stop,)) if load == "busy" else None
            if spinner is not None:
                spinner.start()
            try:
                ratios, ones, manys = [], [], []
                for r in range(rounds):
                    order = (1, cores) if r % 2 == 0 else (cores, 1)
                    got = {t: _samples_per_s(trainer, t, seconds) for t in order}
                    ones.append(got[1])
                    manys.append(got[cores])
                    ratios.append(got[cores] / got[1])
            finally:
                if spinner is not None:
                    stop.set()
                    spinner.join()
            report["cases"].append({
                "model": label, "load": load, "one_thread_samples_per_s": statistics.median(ones),
                "all_cores_samples_per_s": statistics.median(manys), "all_over_one": statistics.median(ratios),
            })
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = measure(args.rounds, args.seconds)
    print(f"{report['cores']} cores; samples/s with all cores over one thread (median of {args.rounds} rounds):")
    for case in report["cases"]:
        print(f"  {case['model']:<30} {case['load']:<8} {case['all_over_one']:.2f}x "
              f"(1 thread {case['one_thread_samples_per_s']:,.0f}/s, {report['cores']} threads "
              f"{case['all_cores_samples_per_s']:,.0f}/s)")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
