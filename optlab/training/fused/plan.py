"""Which runs of an experiment train fused, and why the others do not (torch-free).

Runs form one fusion group when they share everything that decides the forward pass and the
data they see: model configuration, dataset, batch size, seed and shuffling (so the same order
of batches: `epoch_permutation`), epochs, loss, label smoothing, AMP, reporting interval and
device. What may differ inside a group: optimizer and its hyperparameters (among those with a
vectorized update), learning-rate schedule, L1, early stopping, divergence factor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from optlab import registry
from optlab.spec import ResolvedRun

FUSE_MODES = ("off", "auto")
# Wider hidden layers train no faster fused than unfused on CPU (benchmarks/fused.py
# --fuse-wide: the 784-512-512-10 tutorial MLP at 0.98-1.02x, against 3.9-4.6x for 64-128-10):
# that model is compute-bound, so stacking saves little, and the gradients' passes over the
# flat buffer cost about what the unfused run's separate kernels do. A measured rule: a probe
# would need seconds of both engines per group to tell parity from a loss on a loaded machine.
MAX_FUSED_WIDTH = 256


@dataclass
class FusionPlan:
    groups: dict[str, tuple[str, int]] = field(default_factory=dict)  # run -> (group id, size)
    reasons: dict[str, str] = field(default_factory=dict)  # run -> why it trains on its own


def _fusing(kind: str) -> str:
    return ", ".join(e.name for e in registry.registry().entries(kind) if e.has("fuses")) or "none"  # type: ignore[arg-type]


def fusion_error(spec: ResolvedRun) -> str | None:
    """Why `spec` cannot train in a fusion group, or None."""
    optimizer = registry.registry().find("optimizer", spec.optimizer.name)
    if optimizer is None or not optimizer.has("fuses"):
        return f"optimizer {spec.optimizer.name!r} has no vectorized update (fused: {_fusing('optimizer')})"
    model = registry.registry().find("model", spec.model.name)
    if model is None or not model.has("fuses"):
        return f"model {spec.model.name!r} has no stacked form (fused: {_fusing('model')})"
    if max(spec.model.hidden or [0]) > MAX_FUSED_WIDTH:
        return f"hidden layers wider than {MAX_FUSED_WIDTH} train faster unfused (benchmarks/fused.py)"
    problem = device_error(spec, spec.device)
    if problem:
        return problem
    if spec.model.batchnorm:
        return "batch norm is not fused"
    if spec.compile:
        return "compile = true is not fused"
    if spec.clip_grad_norm or spec.clip_grad_value:
        return "gradient clipping is not fused"
    if spec.scheduler.kwargs.get("cycle_momentum"):
        return "a schedule that cycles momentum is not fused"
    return None


def device_error(spec: ResolvedRun, device: str) -> str | None:
    """What keeps `spec` from fusing on `device`; asked again once a run's trainer is built,
    since a Ray actor may train on the GPU Ray gave it while the spec was resolved for "cpu"."""
    if spec.model.dropout > 0 and not device.startswith("cpu"):
        # CUDA's dropout is one fused kernel drawing from the device's Philox offsets, not a
        # bernoulli_ on a tensor of the activation's shape: the stack's per-run masks are the
        # unfused ones on the CPU only (`stacked.dropout_mask`).
        return "dropout is fused on the CPU only (each run's masks as its own forward draws them)"
    if spec.amp == "fp16" and device.startswith("cuda"):
        return "fp16 loss scaling is not fused"
    return None


def fusion_key(spec: ResolvedRun) -> str:
    """Runs with equal keys see the same batches through the same architecture."""
    return json.dumps({
        "model": spec.model_key(), "data": spec.data.model_dump_json(), "batch_size": spec.batch_size,
        "seed": spec.seed, "shuffle": spec.shuffle, "epochs": spec.epochs, "loss": spec.loss,
        "label_smoothing": spec.label_smoothing, "amp": spec.amp, "log_every": spec.log_every,
        "device": spec.device,
    }, sort_keys=True)


def plan(specs: list[ResolvedRun]) -> FusionPlan:
    result = FusionPlan()
    by_key: dict[str, list[str]] = {}
    for spec in specs:
        problem = fusion_error(spec)
        if problem:
            result.reasons[spec.name] = problem
        else:
            by_key.setdefault(fusion_key(spec), []).append(spec.name)
    for names in by_key.values():
        if len(names) < 2:
            result.reasons[names[0]] = (
                "no other run shares its model, data, batch size, seed, epochs, loss and reporting interval"
            )
            continue
        group = f"fuse-{len({g for g, _ in result.groups.values()}) + 1}"
        for name in names:
            result.groups[name] = (group, len(names))
    return result


def split(fusion: FusionPlan, runs: list[str], bins: int) -> tuple[FusionPlan, dict[str, int]]:
    """`fusion`'s groups cut into parts that fill `bins` (a backend's workers, or the actors a
    Ray cluster fits at once) with about their share of `runs` each, ceil(len(runs) / bins):
    groups largest first, each to the least loaded bin, cut where it would overfill that bin's
    share (every part still fused, none of a single run: a group smaller than the share stays
    whole), runs alone after them. Returns the plan by parts (run -> (part id, part size): the
    group's id when it stays whole, else `fuse-1.1`, `fuse-1.2`, ...; the reasons as given) and
    each run's bin. Why cut at all: one worker or actor would train a big stack while the others
    idle (quickstart's batch-128 candidate made a group of 4 beside one of 20; a tuning wave of
    16 trials one group). A part trains bit for bit as its runs would in the whole group: each
    run's matmuls are its own rows of a batched matmul and its update its own slice. Except
    where a group mixes runs with and without L1: `FusedGroup` takes autograd's backward for a
    stack with any L1 member and the written-out one otherwise, and the two round apart."""
    # Keyed apart: a run alone named like a group id ("fuse-1") must not join that group.
    units: dict[tuple[str, str], list[str]] = {}
    for name in runs:
        group = fusion.groups.get(name)
        units.setdefault(("group", group[0]) if group else ("run", name), []).append(name)
    share = math.ceil(len(runs) / max(1, bins))
    load = [0] * max(1, bins)
    parts = FusionPlan(reasons=dict(fusion.reasons))
    where: dict[str, int] = {}
    for (_, gid), names in sorted(units.items(), key=lambda unit: (unit[1][0] not in fusion.groups, -len(unit[1]))):
        count = 0
        while names:
            bin_ = min(range(len(load)), key=lambda i: load[i])
            room = share - load[bin_]
            take = room if room >= 2 and len(names) - room >= 2 else len(names)
            part, names = names[:take], names[take:]
            count += 1
            pid = gid if count == 1 and not names else f"{gid}.{count}"
            if part[0] in fusion.groups:
                parts.groups.update({name: (pid, len(part)) for name in part})
            load[bin_] += len(part)
            where.update({name: bin_ for name in part})
    return parts, where
