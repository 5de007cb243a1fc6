"""How the processes backend deals fused runs to its workers (`ProcessExecutor.replan`: no
worker is started here): every part of a fusion group on one worker, parts of at least two
runs, a group larger than a worker's share cut, and the workers' loads even."""

from __future__ import annotations

import multiprocessing

from optlab.preset.loader import load_preset_text
from optlab.training.executor import Reply
from optlab.training.processes import ProcessExecutor
from optlab.training.worker import send
from optlab.training.worker_link import Worker


class AliveProcess:
    pid = 0

    def is_alive(self) -> bool:
        return True

PRESET = """
name = "dealing"
[data]
dataset = "digits"
[model]
name = "mlp"
hidden = [8]
[train]
epochs = 1
batch_size = 64
"""


def specs(big: int, small: int) -> list:
    runs = "".join(f'[[runs]]\nname = "b{i}"\noptimizer = {{ name = "sgd", lr = {0.01 * (i + 1)} }}\n'
                   for i in range(big))
    runs += "".join(f'[[runs]]\nname = "s{i}"\nbatch_size = 128\noptimizer = {{ name = "adam", lr = {1e-3 * (i + 1)} }}\n'
                    for i in range(small))
    return load_preset_text(PRESET + runs).resolved_runs("cpu")


def test_groups_are_dealt_in_parts_that_even_out_the_workers() -> None:
    executor = ProcessExecutor(["cpu", "cpu"], threads=1, fuse=specs(20, 4))
    fusion = executor._fusion or {}
    slots = {name: executor.slot(name) for name in fusion}
    parts: dict[str, set[str]] = {}
    for name, value in fusion.items():
        assert isinstance(value, tuple), f"{name} should fuse: {value}"
        parts.setdefault(value[0], set()).add(name)
        assert value[1] >= 2
    for members in parts.values():
        assert len({slots[name] for name in members}) == 1  # a part trains on one worker
        assert {len(members)} == {fusion[name][1] for name in members}  # size as recorded
    assert sorted(len(m) for m in parts.values()) == [4, 8, 12]  # 20 cut to fill a worker, 4 whole
    assert sorted(list(slots.values()).count(w) for w in ("w0", "w1")) == [12, 12]
    assert executor.depth == 1  # fused runs are asked one interval at a time


def test_a_wave_without_groups_keeps_the_pipeline_and_deals_in_turn() -> None:
    executor = ProcessExecutor(["cpu", "cpu"], threads=1, fuse=specs(1, 1))
    assert executor.depth == ProcessExecutor.depth == 2
    assert all(isinstance(v, str) and v.startswith("no other run") for v in (executor._fusion or {}).values())
    assert sorted(executor.slot(n) for n in ("b0", "s0")) == ["w0", "w1"]


def test_a_run_alone_named_like_a_group_stays_alone() -> None:
    from optlab.training.fused.plan import FusionPlan, split

    fusion = FusionPlan(groups={"a": ("fuse-1", 2), "b": ("fuse-1", 2)}, reasons={"fuse-1": "alone: its own reason"})
    parts, where = split(fusion, ["a", "b", "fuse-1"], 2)
    assert parts.groups == {"a": ("fuse-1", 2), "b": ("fuse-1", 2)}  # the lone run did not join
    assert where["a"] == where["b"] != where["fuse-1"]


def test_a_fusion_part_is_one_unit_to_the_balancer_and_its_members_stay() -> None:
    executor = ProcessExecutor(["cpu", "cpu"], threads=1, fuse=specs(4, 1))
    fusion = executor._fusion or {}
    parts = {name: value[0] for name, value in fusion.items() if isinstance(value, tuple)}
    assert len(parts) == 4 and "s0" not in parts  # the four sgd runs fuse, s0 trains alone
    for name, part in parts.items():
        assert executor.unit(name) == f"fused {part}" and not executor.movable(name)
    assert executor.unit("s0") == "s0" and executor.movable("s0")
    # What its worker's start reply says decides: a member that trains alone there (started from
    # a state, or FusedHost's checks once built) is its own unit, movable; one fused stays put.
    ours, theirs = multiprocessing.Pipe()
    worker = Worker("cpu", AliveProcess(), ours)  # type: ignore[arg-type]
    alone = {"type": "run_started", "placement": {"backend": "processes"}}
    fused = {"type": "run_started", "placement": {"backend": "processes", "fused": {"group": parts["b1"], "size": 4}}}
    send(theirs, Reply("started", "b0", [alone]))
    send(theirs, Reply("started", "b1", [fused]))
    worker.waiting.extend(["b0", "b1"])
    assert [r.run for r in executor._read(worker)] == ["b0", "b1"]
    assert executor.unit("b0") == "b0" and executor.movable("b0")
    assert executor.unit("b1") == f"fused {parts['b1']}" and not executor.movable("b1")
    assert ProcessExecutor(["cpu"], threads=1).unit("b0") == "b0"  # not fusing
