"""Load balancing by measured speed, for executors that can move a run between their workers
(`processes`): the policy the driver (`Runner`) consults.

Runs are dealt to workers before anyone knows what they cost; how long a digits MLP trains
depends on its optimizer (adadelta and rmsprop took half as long again as sgd), so two slow
runs dealt to one worker kept the other idle at the end (1.8 s of a 15 s experiment,
benchmarks/driver_cost.py (i)). Each run's speed is measured from its own events (its training
time over its steps since its first epoch ended: the first steps pay one-off costs), each
worker's remaining time predicted as the sum of its runs' (one worker trains its runs one after
another; a fusion part, whose members train as one stack, counts once), and when moving one run, or swapping two, between workers of the same device would
end the experiment earlier by a worthwhile margin, the driver moves it: its worker hands over
the run's exact state between two requests and the other worker goes on from it. Nothing the
run computes changes (the state holds its random states; both workers use the same threads);
its record never hears of it (a move is logged at debug level on "optlab.balance").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from optlab.spec import ResolvedRun
    from optlab.training.driven_run import DrivenRun
    from optlab.training.executor import Reply, State

log = logging.getLogger("optlab.balance")

# A run's speed counts once it has trained this long (its own time) since its first epoch
# ended: digits intervals vary by a few percent, and a move is decided on these figures.
MEASURE_S = 0.3
# How often the driver predicts the workers' ends (a few runs' sums: cheap, but not per reply).
CHECK_EVERY_S = 0.5
# A move must end the experiment this much earlier, in seconds and as a share of what is left:
# the prediction is only as good as the speeds, and a move costs the run a trainer built again.
MIN_GAIN_S = 0.3
MIN_GAIN_SHARE = 0.05
# What the receiving worker pays per run moved to it: build the trainer, load the state (a
# digits MLP: tens of ms), counted against the gain so that a marginal move is not made.
MOVE_COST_S = 0.1
# Moves per run at most: speeds drift (a worker sharing its core), and a run must not bounce.
MAX_MOVES = 2


@runtime_checkable
class Movable(Protocol):
    """An executor whose runs can change workers (the processes backend)."""

    def slot(self, run: str) -> str: ...

    def start(self, spec: ResolvedRun, state: State | None) -> None: ...

    def peers(self, slot: str) -> list[str]:
        """The other workers a run of `slot` may move to: those computing the same numbers."""
        ...

    def movable(self, run: str) -> bool:
        """Whether the run trains alone (a member of a fusion group stays with its group)."""
        ...

    def unit(self, run: str) -> str:
        """What the run trains as on its worker: itself, or its fusion part (whose members
        train together, one stack, so that the part's time counts once, not once per member)."""
        ...

    def hand_over(self, run: str) -> None:
        """Ask the run's worker for its exact state, letting it go: a `handed` reply, whose
        checkpoint is None when it cannot be taken now (the run then trains on there)."""
        ...

    def move(self, run: str, slot: str) -> None:
        """The run's requests go to `slot` from now on (the next is its start from the state)."""
        ...


@dataclass(frozen=True)
class Move:
    run: str
    source: str
    target: str


def best_moves(
    remaining: Mapping[str, Mapping[str, float]],
    movable: set[str],
    peers: Mapping[str, list[str]],
    move_cost_s: float = MOVE_COST_S,
) -> tuple[float, float, list[Move]]:
    """The predicted end now, and after the best single move or swap out of the busiest worker
    (the one whose end is the experiment's), with its moves ([] when none helps).
    `remaining`: worker -> {unit: its predicted remaining seconds}, a unit a run or a fusion
    part (`Movable.unit`), the units a worker trains one after another; `movable`: the runs
    that may move, each a unit of its own."""
    ends = {slot: sum(runs.values()) for slot, runs in remaining.items()}
    if not ends:
        return 0.0, 0.0, []
    busiest = max(ends, key=lambda slot: ends[slot])
    now = ends[busiest]
    best = now
    moves: list[Move] = []
    for other in peers.get(busiest, []):
        if other not in ends:
            continue
        rest = max((end for slot, end in ends.items() if slot not in (busiest, other)), default=0.0)
        mine = [(run, t) for run, t in remaining[busiest].items() if run in movable]
        theirs: list[tuple[str | None, float]] = [(None, 0.0)]
        theirs += [(run, t) for run, t in remaining[other].items() if run in movable]
        for run, t in mine:
            for back, u in theirs:
                busy_end = ends[busiest] - t + u + (move_cost_s if back is not None else 0.0)
                other_end = ends[other] - u + t + move_cost_s
                end = max(rest, busy_end, other_end)
                candidate = [Move(run, busiest, other)] + ([Move(back, other, busiest)] if back else [])
                # Of two that end alike, the one with fewer moves (a swap costs two starts).
                if end < best - 1e-9 or (end <= best + 1e-9 and moves and len(candidate) < len(moves)):
                    best, moves = end, candidate
    return now, best, moves


@dataclass
class Balancer:
    """When to move which run. The thresholds are parameters so a test can force moves."""

    min_gain_s: float = MIN_GAIN_S
    min_gain_share: float = MIN_GAIN_SHARE
    measure_s: float = MEASURE_S
    every_s: float = CHECK_EVERY_S
    move_cost_s: float = MOVE_COST_S
    max_moves: int = MAX_MOVES
    moved: list[Move] = field(default_factory=list)  # the moves made (tests and benchmarks count them)
    _reference: dict[str, tuple[int, float]] = field(default_factory=dict)  # run -> (step, elapsed_s)
    _next_check: float = 0.0

    def speed(self, run: DrivenRun) -> float | None:
        """Seconds of its own training per step, once measured (None before)."""
        name = run.spec.name
        ref = self._reference.get(name)
        if ref is None:
            if run.epoch >= 1 and run.step > 0:
                self._reference[name] = (run.step, run.elapsed_s)
            return None
        steps, seconds = run.step - ref[0], run.elapsed_s - ref[1]
        if steps <= 0 or seconds < self.measure_s:
            return None
        return seconds / steps

    def consider(self, runs: Mapping[str, DrivenRun], executor: Movable) -> list[Move]:
        """The moves to make now; at most every `every_s`, and never while one is under way."""
        now = time.monotonic()
        if now < self._next_check:
            return []
        self._next_check = now + self.every_s
        live = [r for r in runs.values() if r.state != "ended"]
        if any(r.moving is not None or r.rejoining for r in live):
            return []
        remaining: dict[str, dict[str, float]] = {}
        movable: set[str] = set()
        # Every run's speed first: each takes its reference at its first look.
        speeds = [self.speed(run) if run.state == "active" else None for run in live]
        if None in speeds:
            return []  # a worker whose runs are not all measured has no predicted end
        for run, speed in zip(live, speeds, strict=True):
            assert speed is not None
            name = run.spec.name
            units = remaining.setdefault(executor.slot(name), {})
            # A fusion part's members each report the part's whole time (their `elapsed_s`), and
            # train as one: the part ends with its slowest member, not after the sum of them.
            unit = executor.unit(name)
            units[unit] = max(units.get(unit, 0.0), max(0, run.total_steps - run.step) * speed)
            if unit == name and not run.stopping and run.moves < self.max_moves and executor.movable(name):
                movable.add(name)
        # A worker with no live run left is where runs move to first (work stealing).
        for slot in list(remaining):
            for peer in executor.peers(slot):
                remaining.setdefault(peer, {})
        peers = {slot: executor.peers(slot) for slot in remaining}
        end, after, moves = best_moves(remaining, movable, peers, self.move_cost_s)
        if not moves or end - after < max(self.min_gain_s, self.min_gain_share * end):
            return []
        for move in moves:
            log.debug("moving %s from %s to %s: predicted end %.2f s -> %.2f s", move.run, move.source,
                      move.target, end, after)
        return moves

    def done(self, move: Move, handed: bool) -> None:
        """The run's worker answered: it handed the state over (the run goes on at the target),
        or could not take it now (it trains on where it was; it counts against `max_moves`)."""
        if handed:
            self.moved.append(move)
        log.debug("%s %s from %s to %s", "moved" if handed else "could not move", move.run, move.source, move.target)


class Balancing:
    """A move's steps in the driver, between `Runner`'s requests: decided (`consider`: the run's
    `moving` is set, no more advances go to it), handed over once none of its requests is in
    flight (`hand_over`), started on the target from that state (`handed`); the RunStarted
    of that start is the driver's to leave out of the run's record."""

    def __init__(self, policy: Balancer, executor: Movable) -> None:
        self.policy = policy
        self.executor = executor

    def consider(self, runs: Mapping[str, DrivenRun]) -> None:
        for move in self.policy.consider(runs, self.executor):
            run = runs[move.run]
            run.moving, run.moves = move, run.moves + 1

    def hand_over(self, run: DrivenRun) -> None:
        """Its requests all answered: ask its worker for its state. A stop asked meanwhile
        cancels the move (the run ends where it is, with the state a stop keeps)."""
        if run.stopping:
            run.moving = None
            return
        run.inflight = 1
        self.executor.hand_over(run.spec.name)

    def handed(self, run: DrivenRun, reply: Reply) -> None:
        """Its worker answered: start it from the state on the target (the state is also its
        latest to restart from, should that worker die), or leave it where it is when its
        worker could not take the state now."""
        move, run.moving, run.inflight = run.moving, None, 0
        if move is None:
            return
        self.policy.done(move, reply.checkpoint is not None)
        if reply.checkpoint is None:
            return
        self.executor.move(run.spec.name, move.target)
        run.checkpoint, run.rejoining, run.inflight = reply.checkpoint, True, 1
        self.executor.start(run.spec, reply.checkpoint)
