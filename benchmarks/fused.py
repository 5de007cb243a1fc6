"""Fused training (issue 19) against optlab's own unfused local engine, in one run:

    python benchmarks/fused.py [--quick] [--epochs 10] [--rounds 2] [--fuse-wide] [--json FILE]

(a) 8 digits MLPs (64-128-10, batch 64) with different optimizers and learning rates
    (sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad, adam at another lr): target >= 4x;
(b) 16 digits MLPs, SGD with momentum at 16 learning rates: target >= 6x; measured twice: as
    `compare` trains them (each run's test report at its end), and as `optlab tune` trains a
    study's trials (no test split: `evaluate_test` false, what `tuning/space.py` gives a trial);
(c) 4 tutorial-sized MLPs (784-512-512-10, batch 64) on synthetic 784-feature data: never slower
    (`auto` trains them unfused: plan.py's width rule); with --fuse-wide also fused regardless
    of the rule, the measurement behind it;
(d) RSS of a process training 1, 8 and 16 fused digits runs for one epoch: once loaded, and its
    peak while training (Linux's VmHWM reset before it), so what the runs add shows apart from
    torch and the dataset;
(e) (a) with dropout 0.2 after the hidden layer (the quickstart's MLP): what dropout costs each
    engine (each run's masks drawn from its own random state, fused as unfused).

Samples/s is every run's training samples over the wall time of `Runner.run` with no sinks,
one torch thread, rounds alternating unfused/fused, best round of each kept; the CPU-time ratio
(the same samples over the process's CPU time) is printed beside it, steadier where the machine
is shared. Compare ratios from one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]

OPTIMIZERS = [
    '{ name = "sgd", lr = 0.05 }',
    '{ name = "sgd", lr = 0.05, momentum = 0.9 }',
    '{ name = "sgd", lr = 0.05, momentum = 0.9, nesterov = true }',
    '{ name = "adam", lr = 1e-3 }',
    '{ name = "adamw", lr = 1e-3, weight_decay = 1e-2 }',
    '{ name = "rmsprop", lr = 1e-3 }',
    '{ name = "adagrad", lr = 0.05 }',
    '{ name = "adam", lr = 3e-3 }',
]


def preset(dataset: str, hidden: list[int], epochs: int, optimizers: list[str], limit: int | None,
           dropout: float = 0.0) -> str:
    data = f'dataset = "{dataset}"' if not dataset.endswith(".npz") else f'dataset = "npz"\npath = "{dataset}"'
    head = f"""name = "fused-bench"
[data]
{data}
{f"train_limit = {limit}" if limit else ""}
[model]
name = "mlp"
hidden = {hidden}
dropout = {dropout}
[train]
epochs = {epochs}
batch_size = 64
seed = 0
"""
    runs = "".join(f'[[runs]]\nname = "r{i}"\noptimizer = {opt}\n' for i, opt in enumerate(optimizers))
    return head + runs


def train(text: str, fuse: bool, trials: bool = False) -> tuple[float, float]:
    """Samples per second of every run together: over the wall time, and over this process's
    CPU time (one thread: on a machine shared with other work, the time it was not descheduled)."""
    from optlab.data.datasets import load_dataset
    from optlab.preset.loader import load_preset_text
    from optlab.training.executor import LocalExecutor
    from optlab.training.fused.host import FusedLocalExecutor
    from optlab.training.runner import Runner

    loaded = load_preset_text(text)
    specs = loaded.resolved_runs("cpu")
    if trials:  # as a tuning study's trials train: no test evaluation at their ends
        specs = [spec.model_copy(update={"evaluate_test": False}) for spec in specs]
    data = load_dataset(loaded.preset.data, "cpu")
    executor = FusedLocalExecutor(data, "cpu", specs) if fuse else LocalExecutor(data, "cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    ended = Runner(specs, data, "cpu", [], executor=executor).run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert all(e.status == "finished" for e in ended.values()), {k: e.reason for k, e in ended.items()}
    samples = len(specs) * specs[0].epochs * data.x_train.shape[0]
    return samples / wall, samples / cpu


def compare(text: str, rounds: int, trials: bool = False) -> dict[str, float]:
    best = {"unfused": (0.0, 0.0), "fused": (0.0, 0.0)}
    for _ in range(rounds):
        for mode in ("unfused", "fused"):
            wall, cpu = train(text, mode == "fused", trials)
            best[mode] = (max(best[mode][0], wall), max(best[mode][1], cpu))
    return {"unfused_samples_per_s": best["unfused"][0], "fused_samples_per_s": best["fused"][0],
            "ratio": best["fused"][0] / best["unfused"][0], "cpu_ratio": best["fused"][1] / best["unfused"][1]}


def synthetic_npz(folder: Path, n: int) -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / "tutorial.npz"
    x = rng.standard_normal((n, 784)).astype("float32")
    y = (x[:, :10].argmax(1)).astype("int64")
    np.savez(path, x=x, y=y)
    return str(path)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def training_rss() -> tuple[float, float]:
    """In this process, after everything is loaded: (RSS before training, peak RSS while it
    trained), in MB. Linux's peak (VmHWM) is reset first (`/proc/self/clear_refs` 5), so the
    peak is training's own, not the imports' or the dataset's."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS") / 1024, _status_kb("VmHWM") / 1024


def rss_mb(k: int, epochs: int, fuse: bool = True) -> dict[str, float]:
    """A fresh process training k runs (fused, or unfused with `fuse` false): its RSS once
    loaded (preset, dataset, modules, a warm-up of one unfused epoch) and its peak while the k
    runs trained, and what the training added over the loaded process."""
    code = (
        "import sys, json; sys.path.insert(0, {repo!r}); sys.path.insert(0, {bench!r}); import fused; "
        "fused.train(fused.preset('digits', [128], 1, fused.OPTIMIZERS[3:4], 200), False); "
        "text = fused.preset('digits', [128], {epochs}, fused.OPTIMIZERS[3:4] * {k}, None); "
        "before, _ = fused.training_rss(); fused.train(text, {fuse}); "
        "print(json.dumps([before, fused._status_kb('VmHWM') / 1024]))"
    ).format(repo=str(REPO), bench=str(REPO / "benchmarks"), epochs=epochs, k=k, fuse=fuse)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, peak = json.loads(out.stdout.split("\n")[-2])
    return {"loaded": before, "peak": peak, "added": peak - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, not speed")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fuse-wide", action="store_true", help="(c) also fused despite the width rule")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from optlab.training.threads import use_threads

    use_threads(1)
    epochs, rounds, limit = (1, 1, 200) if args.quick else (args.epochs, args.rounds, None)
    doc: dict[str, Any] = {"mode": "quick" if args.quick else "full", "threads": 1}
    doc["a_8_optimizers"] = compare(preset("digits", [128], epochs, OPTIMIZERS, limit), rounds)
    doc["e_8_optimizers_dropout"] = compare(preset("digits", [128], epochs, OPTIMIZERS, limit, 0.2), rounds)
    sgd = [f'{{ name = "sgd", lr = {0.005 * (i + 1):g}, momentum = 0.9 }}' for i in range(16)]
    doc["b_16_sgd_lrs"] = compare(preset("digits", [128], epochs, sgd, limit), rounds)
    doc["b_16_sgd_lrs_as_trials"] = compare(preset("digits", [128], epochs, sgd, limit), rounds, trials=True)
    with tempfile.TemporaryDirectory() as tmp:
        npz = synthetic_npz(Path(tmp), 256 if args.quick else 4096)
        tutorial = [f'{{ name = "adam", lr = {lr} }}' for lr in (1e-4, 3e-4, 1e-3, 3e-3)]
        text = preset(npz, [512, 512], 1 if args.quick else 2, tutorial, None)
        doc["c_tutorial_mlp"] = compare(text, rounds)
        if args.fuse_wide:
            from optlab.training.fused import plan

            rule, plan.MAX_FUSED_WIDTH = plan.MAX_FUSED_WIDTH, 10**9
            doc["c_tutorial_mlp_fused_anyway"] = compare(text, rounds)
            plan.MAX_FUSED_WIDTH = rule
    counts = (1, 2) if args.quick else (1, 8, 16)
    doc["d_rss_mb"] = {str(k): rss_mb(k, 1) for k in counts}
    doc["d_rss_mb_unfused"] = {str(k): rss_mb(k, 1, fuse=False) for k in counts}
    doc["self_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for key in ("a_8_optimizers", "e_8_optimizers_dropout", "b_16_sgd_lrs", "b_16_sgd_lrs_as_trials", "c_tutorial_mlp",
                "c_tutorial_mlp_fused_anyway"):
        if key not in doc:
            continue
        r = doc[key]
        print(f"{key}: fused {r['fused_samples_per_s']:,.0f} samples/s vs unfused {r['unfused_samples_per_s']:,.0f}"
              f" -> {r['ratio']:.2f}x (CPU time: {r['cpu_ratio']:.2f}x)")
    rss = doc["d_rss_mb"]
    print(f"RSS (MB) training {'/'.join(rss)} fused runs: loaded " + " / ".join(f"{v['loaded']:.0f}" for v in rss.values())
          + ", peak while training " + " / ".join(f"{v['peak']:.0f}" for v in rss.values())
          + ", added " + " / ".join(f"{v['added']:+.1f}" for v in rss.values())
          + " (unfused: added " + " / ".join(f"{v['added']:+.1f}" for v in doc["d_rss_mb_unfused"].values()) + ")")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
