"""The balancing policy (`optlab.training.balance`): which move or swap ends the experiment
earliest, the margin a move must win by, and what is never moved."""

from __future__ import annotations

from typing import Any

from optlab.training.balance import Balancer, Move, best_moves
from optlab.training.driven_run import DrivenRun

PEERS = {"w0": ["w1"], "w1": ["w0"]}


def test_the_busiest_worker_gives_the_run_that_evens_the_ends_best() -> None:
    # The profile of issue 20's compare: the two slow runs dealt to one worker.
    remaining = {"w0": {"a": 3.0, "b": 3.0, "c": 3.0}, "w1": {"d": 3.0, "e": 4.5, "f": 4.5}}
    now, after, moves = best_moves(remaining, set("abcdef"), PEERS, move_cost_s=0.1)
    assert now == 12.0
    assert moves == [Move("e", "w1", "w0"), Move("a", "w0", "w1")]  # a swap: 10.5 against 10.6
    assert after == 10.6


def test_a_single_move_beats_a_swap_that_ends_as_early() -> None:
    remaining = {"w0": {"slow": 8.0, "fast": 2.0}, "w1": {"other": 2.0}}
    _, after, moves = best_moves(remaining, {"slow", "fast", "other"}, PEERS, move_cost_s=0.0)
    assert (after, moves) == (8.0, [Move("fast", "w0", "w1")])


def test_an_idle_worker_takes_a_run_and_unmovable_runs_stay() -> None:
    remaining = {"w0": {"a": 2.0, "b": 2.0}, "w1": {}}
    assert best_moves(remaining, {"a", "b"}, PEERS, 0.1)[2] == [Move("a", "w0", "w1")]
    assert best_moves(remaining, set(), PEERS, 0.1)[2] == []  # e.g. a fusion group's members
    assert best_moves(remaining, {"a", "b"}, {"w0": [], "w1": []}, 0.1)[2] == []  # other devices


class FakeExecutor:
    def __init__(self, slots: dict[str, str], fixed: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.slots, self.fixed = slots, fixed

    def slot(self, run: str) -> str:
        return self.slots[run]

    def peers(self, slot: str) -> list[str]:
        return [s for s in ("w0", "w1") if s != slot]

    def movable(self, run: str) -> bool:
        return run not in self.fixed

    def unit(self, run: str) -> str:
        return run


def driven(name: str, step: int, elapsed_s: float, total: int = 1000) -> DrivenRun:
    spec: Any = type("Spec", (), {"name": name})()
    return DrivenRun(spec, state="active", inflight=0, step=step, total_steps=total, epoch=1, elapsed_s=elapsed_s)


def test_moves_wait_for_measured_speeds_and_a_worthwhile_gain() -> None:
    runs = {"a": driven("a", 100, 0.1), "b": driven("b", 100, 0.1), "c": driven("c", 100, 0.1)}
    executor = FakeExecutor({"a": "w0", "b": "w0", "c": "w1"})
    policy = Balancer(every_s=0.0, measure_s=0.5)
    assert policy.consider(runs, executor) == []  # the first look only takes each run's reference
    for run in runs.values():
        run.step, run.elapsed_s = 200, 0.6  # 0.5 s over 100 steps: 5 ms a step, 800 steps left
    # w0 8 s left, w1 4 s: a run that moved would only move the end to the other worker.
    assert policy.consider(runs, executor) == []
    runs["a"].step = 120  # a is slower: 0.5 s over 20 steps, 880 left: 22 s against b's and c's 4 s
    assert policy.consider(runs, executor) == [Move("b", "w0", "w1")]  # 26 s -> 22.1 s
    policy.min_gain_s = 5.0  # not worth it by this margin
    assert policy.consider(runs, executor) == []
    policy.min_gain_s = 0.3
    runs["b"].moves = policy.max_moves  # moved enough: b stays, a swap with c is next best
    assert policy.consider(runs, executor) == [Move("a", "w0", "w1"), Move("c", "w1", "w0")]
    runs["b"].moves = 0
    assert policy.consider(runs, FakeExecutor(executor.slots, fixed={"a", "b"})) == []
    runs["c"].moving = Move("c", "w1", "w0")  # one move at a time
    assert policy.consider(runs, executor) == []


class FusingExecutor(FakeExecutor):
    """Runs f1, f2, f3 train as one fusion part on w0 (each member reports the part's time)."""

    def unit(self, run: str) -> str:
        return "fused part" if run.startswith("f") else run

    def movable(self, run: str) -> bool:
        return self.unit(run) == run


def test_a_fusion_part_counts_once_so_the_lone_run_moves_the_right_way() -> None:
    # w0: a part of three members, 2 s left (each member says 2 s: the part's time), and a (1 s):
    # 3 s in truth, 7 s counted per member. w1: b (4 s) and c (1 s), 5 s: the busiest.
    left = {"f1": 2.0, "f2": 2.0, "f3": 2.0, "a": 1.0, "b": 4.0, "c": 1.0}
    runs = {name: driven(name, 100, 0.1, total=1200) for name in left}
    executor = FusingExecutor({"f1": "w0", "f2": "w0", "f3": "w0", "a": "w0", "b": "w1", "c": "w1"})
    policy = Balancer(every_s=0.0, measure_s=0.0, move_cost_s=0.0, min_gain_s=0.1, min_gain_share=0.0)
    assert policy.consider(runs, executor) == []  # references
    for name, seconds in left.items():  # 1000 steps left each at seconds / 1000 a step
        runs[name].step, runs[name].elapsed_s = 200, 0.1 + seconds / 10
    # c to w0 ends at 4 s; counting the part thrice would move a to w1 (w1 then ends at 6 s).
    assert policy.consider(runs, executor) == [Move("c", "w1", "w0")]


def test_a_unit_is_never_a_movable_run_and_best_moves_sums_units() -> None:
    remaining = {"w0": {"fused part": 2.0, "a": 1.0}, "w1": {"b": 4.0, "c": 1.0}}
    now, after, moves = best_moves(remaining, {"a", "b", "c"}, PEERS, move_cost_s=0.0)
    assert (now, after, moves) == (5.0, 4.0, [Move("c", "w1", "w0")])
