"""How much the driver asks an executor for at a time.

Remote workers (processes and Ray: executors whose `depth` is above 1):
While a run's reporting intervals train for less than PIPELINE_BELOW_S, a request asks the
worker to keep training intervals for about BATCH_S (fewer round trips, each of which costs
the worker and the driver CPU), and the worker holds `depth` requests (it trains the next
while the driver reads the last). A pause or stop then acts within about depth * BATCH_S. A
run whose interval length is not known yet, or is longer, gets one interval per request and
one request in flight, so a control acts within one interval.

The local executor has no round trip, but every request still costs the driver its dispatch
and reply handling: on a digits MLP (1.4 ms intervals) that was a quarter of the driver's time.
A local request with short intervals keeps training for about LOCAL_BATCH_S, so runs take turns
about every 20 ms, a pause or stop acts within that, and no number changes (each run draws
from its own random state).

A request crosses epoch ends (a digits epoch is about 7 ms), except where a checkpoint is taken
(one state per reply) and where the driver decides at each epoch end: a tuning study's pruner
(`Runner(epoch_decisions=True)`) stops a trial at the epoch that decided it, on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

PIPELINE_BELOW_S = 0.05
BATCH_S = 0.05
LOCAL_BATCH_S = 0.02


@dataclass
class IntervalClock:
    """A run's training time per step, from consecutive reports since it (re)started."""

    step_s: float | None = None
    interval_steps: int = 0  # the longest interval seen, in steps: the run's reporting interval
    _last: tuple[int, float] | None = None

    def restart(self) -> None:
        """A new start (or restart from a checkpoint): its first report is only a reference."""
        self._last = None

    def report(self, step: int, elapsed_s: float) -> None:
        last = self._last
        if last is not None and step > last[0] and elapsed_s > last[1]:
            steps = step - last[0]
            self.step_s = (elapsed_s - last[1]) / steps
            self.interval_steps = max(self.interval_steps, steps)
        self._last = (step, elapsed_s)

    @property
    def short(self) -> bool:
        """Its intervals train for less than PIPELINE_BELOW_S (unknown: no)."""
        return self.step_s is not None and self.step_s * self.interval_steps < PIPELINE_BELOW_S


def room(clock: IntervalClock, depth: int) -> int:
    """How many requests of this run may be in flight."""
    return depth if clock.short else 1


def budget_s(clock: IntervalClock, depth: int) -> float:
    """How long one request keeps training intervals (0: exactly one)."""
    if not clock.short:
        return 0.0
    return BATCH_S if depth > 1 else LOCAL_BATCH_S
