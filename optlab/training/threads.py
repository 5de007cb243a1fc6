"""The numerical environment of a run: what, besides its spec, decides its floats.

A sum over a tensor splits across torch's intra-op threads, and its float rounding follows
the split: the same run trained with one thread and with two differs in the last digits after
a few steps. The thread count is therefore part of a run, like its seed: every front end uses
the same default, each run records the count it trained with (its placement, its
checkpoints), and `resume` trains on with the recorded count.

One thread per training process is the default because it was never slower on the models this
lab is mostly used with (measured in benchmarks/threads.py, docs/benchmarks.md): a digits
MLP step is too small to split, and on a busy machine a second thread waits for a core. Larger
models on a quiet machine with many cores gain from more: `--threads N`.
"""

from __future__ import annotations

from typing import Any

DEFAULT_THREADS = 1


def numerical_environment() -> dict[str, Any]:
    """This process's torch threads, torch version and deterministic-algorithms flag."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def use_threads(threads: int | None) -> int:
    """Set this process's torch threads (the default when None) and return the count."""
    import torch

    count = threads or DEFAULT_THREADS
    torch.set_num_threads(count)
    return count


def environment_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a run's recorded environment and this one, as phrases such as
    `2 torch threads (recorded: 1)`; keys one side lacks (older records) are not compared."""
    changes = []
    for key, label in (("threads", "torch threads"), ("torch", "torch"), ("deterministic", "deterministic algorithms")):
        if key in recorded and key in now and recorded[key] != now[key]:
            changes.append(f"{label} {now[key]} (recorded: {recorded[key]})")
    return changes
