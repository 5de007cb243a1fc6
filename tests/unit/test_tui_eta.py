"""The status line's ETA: every unfinished run's remaining time added up, taken once per batch
of events (not once per run and caller) and kept up to date as progress arrives."""

from __future__ import annotations

import pytest
from sweep_fixtures import sweep_events

from optlab.training.events import Progress
from optlab.tui.state import ExperimentState


def test_eta_is_the_sum_of_the_runs_remaining_time_and_follows_new_progress() -> None:
    events = sweep_events(optimizers=("sgd",), lrs=(1e-3, 1e-2), epochs=3, unfinished=2)
    state = ExperimentState()
    state.apply([e for e in events if not isinstance(e, Progress) and e.kind in ("experiment_started", "run_started")])
    names = state.run_names
    assert state.eta_s(names[0]) is None  # no progress yet: unknown
    state.apply([e for e in events if isinstance(e, Progress) and e.step == 10])
    # each run: 20 of 30 steps left at 0.1 s per 10 steps -> 0.2 s; they share the machine
    assert state.eta_s(names[0]) == pytest.approx(0.4) and state.eta_s(names[1]) == pytest.approx(0.4)
    state.apply([e for e in events if isinstance(e, Progress) and e.step == 20])
    assert state.eta_s(names[1]) == pytest.approx(0.2)
