"""How often the experiment screen draws new data: a budget on the UI's own CPU time.

On a small CPU-only machine the UI and the training child share the cores, and torch's
intra-op threads wait for each other: every millisecond the UI takes can stall a training
step on the other core, so the UI's cost on throughput is several times its CPU share. The
screen therefore draws new data at most once a second, and less often (down to once every few
seconds) while its process uses more than `budget` of one core; keys still act at once. On a
GPU box, or with a slow event rate, drawing stays at once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RedrawPace:
    def __init__(
        self,
        fastest_s: float = 1.0,
        slowest_s: float = 4.0,
        budget: float = 0.03,
        window_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.fastest_s, self.slowest_s, self.budget, self.window_s = fastest_s, slowest_s, budget, window_s
        self.every_s = fastest_s
        self.share = 0.0  # the UI process's CPU share of one core over the last window
        self._clock, self._cpu = clock, cpu
        self._since, self._cpu_since = clock(), cpu()

    def due(self, last_s: float, now_s: float) -> bool:
        return now_s - last_s >= self.every_s

    def observe(self) -> None:
        """Called every tick: once a window has passed, slow down while over the budget and
        speed up again once well under it."""
        now, cpu = self._clock(), self._cpu()
        if now - self._since < self.window_s:
            return
        self.share = (cpu - self._cpu_since) / (now - self._since)
        self._since, self._cpu_since = now, cpu
        if self.share > self.budget:
            self.every_s = min(self.slowest_s, self.every_s * 1.5)
        elif self.share < self.budget / 2:
            self.every_s = max(self.fastest_s, self.every_s / 1.5)
