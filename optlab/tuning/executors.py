"""One executor for every wave of a study.

A study trains in waves (one `Runner` each), and a `Runner` closes its executor when its runs
have ended. Made anew per wave, the `processes` backend spawned its workers again at every
wave (a Python with torch and the dataset per worker: seconds each, beside trials that train
for a fraction of a second). `KeptExecutor` hands the driver the same executor every wave and
closes it once, at the study's end; a fusing executor is told each wave's runs first (its
groups are planned per wave). The ray backend is made per wave still: its actors end with
their runs (an actor with the last of its group's), and a fusing one plans the wave's groups
as it is made. An executor that can move runs between its workers (`processes`) is kept as a
`KeptMovable`, so that each wave's driver balances its trials as a compare's are balanced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optlab.training.balance import Movable

if TYPE_CHECKING:
    from optlab.spec import ResolvedRun
    from optlab.training.checkpoint_policy import CheckpointPolicy
    from optlab.training.executor import Executor, Reply, State


class KeptExecutor:
    """The driver's view of `inner` for one wave: everything but `close` passes through."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.device_label = inner.device_label
        self.can_lose_workers = inner.can_lose_workers
        self.capacity = inner.capacity
        self.waves = 0

    @property
    def depth(self) -> int:
        return int(getattr(self.inner, "depth", 1))

    def wave(self, specs: list[ResolvedRun]) -> KeptExecutor:
        """The next wave's runs: a fusing executor plans their groups (the first wave's were
        planned when it was made)."""
        replan = getattr(self.inner, "replan", None)
        if self.waves and replan is not None:
            replan(specs)
        self.waves += 1
        return self

    def slot(self, run: str) -> str:
        return self.inner.slot(run)

    def start(self, spec: ResolvedRun, state: State | None) -> None:
        self.inner.start(spec, state)

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> None:
        self.inner.advance(run, checkpoints, budget_s, past_epoch_ends)

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> None:
        self.inner.stop(run, reason, evaluate_test, checkpoint)

    def collect(self, timeout: float) -> list[Reply]:
        return self.inner.collect(timeout)

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        return self.inner.end_now(run, reason)

    def release(self, run: str) -> None:
        self.inner.release(run)

    def close(self) -> None:
        """The wave is over; the executor stays for the next one."""

    def shutdown(self) -> None:
        self.inner.close()


class KeptMovable(KeptExecutor):
    """A kept executor whose runs can change workers (`optlab.training.balance.Movable`): the
    driver balances a wave's trials on it as it would a compare's runs."""

    inner: Any  # a Movable executor

    def peers(self, slot: str) -> list[str]:
        return list(self.inner.peers(slot))

    def movable(self, run: str) -> bool:
        return bool(self.inner.movable(run))

    def unit(self, run: str) -> str:
        return str(self.inner.unit(run))

    def hand_over(self, run: str) -> None:
        self.inner.hand_over(run)

    def move(self, run: str, slot: str) -> None:
        self.inner.move(run, slot)


def keep(inner: Executor) -> KeptExecutor:
    """`inner` kept for every wave; movable where it is."""
    return KeptMovable(inner) if isinstance(inner, Movable) else KeptExecutor(inner)
