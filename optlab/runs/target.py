"""Time to target: the first epoch at which a run reached the preset's `target`, with the
samples seen and the run's own training time at that point (AlgoPerf's and DeepOBS's measure
of an optimizer's speed). Pure data: a history in, a small dict out."""

from __future__ import annotations

import math
from typing import Any

# Accuracies reach a target from below; losses from above.
HIGHER_IS_BETTER = frozenset({"val_accuracy", "train_accuracy"})


def reached(metric: str, value: float, target: float) -> bool:
    return value >= target if metric in HIGHER_IS_BETTER else value <= target


def time_to_target(
    history: list[dict[str, Any]], target: dict[str, Any] | None, wall_before: float = 0.0
) -> dict[str, Any] | None:
    """`{"reached": bool, "epoch", "samples_seen", "wall_time_s"}` (None values when not
    reached), or None when the preset sets no target. Checked at epoch ends, where the
    metrics are measured; `wall_time_s` is the run's own time, evaluations included.
    `history` may be the latest epochs only, `wall_before` the time of the epochs before them
    (a live fold checks each new epoch once instead of the whole history again)."""
    if not target or "metric" not in target or "value" not in target:
        return None
    metric, goal = str(target["metric"]), float(target["value"])
    # The run's time so far is the sum of its epochs' times: history holds no running clock,
    # so that histories stay free of timings other than `epoch_s` (exact-resume comparisons).
    wall = wall_before
    for record in sorted(history, key=lambda h: h.get("epoch", 0)):
        epoch_s = record.get("epoch_s")
        wall += epoch_s if isinstance(epoch_s, int | float) and math.isfinite(epoch_s) else 0.0
        value = record.get(metric)
        if isinstance(value, int | float) and math.isfinite(value) and reached(metric, value, goal):
            return {
                "reached": True,
                "epoch": record.get("epoch"),
                "samples_seen": record.get("samples_seen"),
                "wall_time_s": wall,
            }
    return {"reached": False, "epoch": None, "samples_seen": None, "wall_time_s": None}
