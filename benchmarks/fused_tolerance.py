"""How far `--fuse auto` lands from `--fuse off` on a bundled preset (issue 19's trust figures):

    python benchmarks/fused_tolerance.py [--preset quickstart] [--epochs N] [--json FILE]

Trains the preset's runs unfused and fused (one torch thread, the CPU) and prints, per fused
run: the largest relative difference of its progress losses and of its validation losses, its
train and test accuracy differences in samples, its test loss's relative difference, the final
weights' max |w_fused - w| / max |w| over its tensors, and whether its final random state (its
checkpoint's rng_cpu: every dropout mask drawn) is the unfused one exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]


class Collect:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.states: dict[str, dict[str, Any]] = {}

    def handle(self, event: Any) -> None:
        self.events.append(event)

    def checkpoint(self, run: str, state: dict[str, Any], is_best: bool) -> None:
        self.states[run] = state

    def of(self, kind: str, run: str) -> list[Any]:
        return [e for e in self.events if type(e).__name__ == kind and e.run == run]


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-30)


def measure(preset: str, epochs: int | None) -> dict[str, Any]:
    from optlab.data.datasets import load_dataset
    from optlab.preset.loader import load_preset
    from optlab.training.executor import LocalExecutor
    from optlab.training.fused.host import FusedLocalExecutor
    from optlab.training.runner import Runner

    overrides = [f"train.epochs={epochs}"] if epochs else []
    loaded = load_preset(preset, overrides)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data, "cpu")
    plain, fused = Collect(), Collect()
    Runner(specs, data, "cpu", [plain], executor=LocalExecutor(data, "cpu")).run()
    Runner(specs, data, "cpu", [fused], executor=FusedLocalExecutor(data, "cpu", specs)).run()
    out: dict[str, Any] = {}
    for spec in specs:
        name = spec.name
        if "fused" not in fused.of("RunStarted", name)[0].placement:
            continue
        pa, pb = plain.of("Progress", name), fused.of("Progress", name)
        ea, eb = plain.of("EpochEnded", name), fused.of("EpochEnded", name)
        ra, rb = plain.of("RunEnded", name)[0], fused.of("RunEnded", name)[0]
        n_train, n_test = data.x_train.shape[0], ra.test["n"] if "n" in ra.test else data.x_test.shape[0]
        sa, sb = plain.states[name], fused.states[name]
        out[name] = {
            "progress_loss_rel": max(rel(x.train_loss, y.train_loss) for x, y in zip(pa, pb, strict=True)),
            "val_loss_rel": max(rel(x.val_loss, y.val_loss) for x, y in zip(ea, eb, strict=True)),
            "train_acc_samples": max(round(abs(x.train_accuracy - y.train_accuracy) * n_train)
                                     for x, y in zip(ea, eb, strict=True)),
            "test_acc_samples": round(abs(ra.test["accuracy"] - rb.test["accuracy"]) * n_test),
            "test_loss_rel": rel(ra.test["loss"], rb.test["loss"]) if "loss" in ra.test else None,
            "weights_share": max(((sb["model"][k] - v).abs().max() / v.abs().max()).item()
                                 for k, v in sa["model"].items()),
            "rng_equal": bool((sa["rng_cpu"] == sb["rng_cpu"]).all()),
            "status": (ra.status, rb.status),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from optlab.training.threads import use_threads

    use_threads(1)
    doc = measure(args.preset, args.epochs)
    for name, r in doc.items():
        print(f"{name}: progress loss {r['progress_loss_rel']:.1e} rel, val loss {r['val_loss_rel']:.1e} rel, "
              f"train acc {r['train_acc_samples']} / test acc {r['test_acc_samples']} samples apart, "
              f"test loss {r['test_loss_rel'] or 0:.1e} rel, weights {r['weights_share']:.1e} of max |w|, "
              f"rng {'equal' if r['rng_equal'] else 'DIFFERENT'}, status {r['status'][1]}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
