"""When a run's checkpoint is taken: every so many seconds of its training, or every so many
epochs, always at its end, and (where the run can say where it is) when the experiment is
interrupted.

A checkpoint at every epoch end cost most of a 7 ms epoch (a state serialised and written
atomically, with fsyncs): on small models that made the driver, not training, the bottleneck.
Exact resume does not need one per epoch: a run resumed from an earlier checkpoint trains the
epochs after it again, with the same numbers, and its new records replace the old ones.
Torch-free, so the command line can parse `--checkpoint-every` before importing the engine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from optlab.errors import OptlabError

DEFAULT_EVERY = "10s"
_FORM = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?)\s*(?P<unit>s|m|epochs?)?\s*$")


@dataclass(frozen=True)
class CheckpointPolicy:
    """`seconds`: of the run's own training time since its last checkpoint; `epochs`: since
    its last checkpoint. Exactly one of them is set."""

    seconds: float | None = 10.0
    epochs: int | None = None

    def due(self, seconds_since: float, epochs_since: int) -> bool:
        if self.epochs is not None:
            return epochs_since >= self.epochs
        return seconds_since >= (self.seconds or 0.0)

    def describe(self) -> str:
        if self.epochs is not None:
            return f"every {self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return f"every {self.seconds:g} s of training"


EVERY_EPOCH = CheckpointPolicy(seconds=None, epochs=1)


def parse_checkpoint_every(text: str) -> CheckpointPolicy:
    """`30s` or `2m` (of each run's training time), `5` or `5epochs` (epochs). Raises OptlabError
    naming the value and the forms allowed."""
    match = _FORM.match(text)
    allowed = "allowed: seconds such as '10s' or '2m', or a whole number of epochs such as '1' or '5epochs'"
    if match is None:
        raise OptlabError(f"--checkpoint-every {text!r}: {allowed}")
    number, unit = float(match["number"]), match["unit"] or "epochs"
    if not math.isfinite(number) or number <= 0 or number > 1e9:
        raise OptlabError(f"--checkpoint-every {text!r}: must be above 0 (and below 1e9); {allowed}")
    if unit.startswith("epoch"):
        if number != int(number):
            raise OptlabError(f"--checkpoint-every {text!r}: a number of epochs is whole; {allowed}")
        return CheckpointPolicy(seconds=None, epochs=int(number))
    return CheckpointPolicy(seconds=number * (60.0 if unit == "m" else 1.0), epochs=None)
