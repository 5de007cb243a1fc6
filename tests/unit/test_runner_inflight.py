"""The driver's count of requests in flight for a run that has ended: a pipelining worker (two
requests in flight) answers a run's second request after the reply that ended it. That answer
must free the worker's room; left counted, two such runs on one worker held all its room and
the other runs there were never asked again (a tuning wave on `processes` hung at its end,
timing-dependent: reproduced by benchmarks/tune_backends.py under load)."""

from __future__ import annotations

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.driven_run import DrivenRun
from optlab.training.executor import Reply
from optlab.training.runner import Runner

PRESET = """
name = "inflight"
[data]
dataset = "digits"
train_limit = 100
[model]
name = "mlp"
hidden = [8]
[train]
epochs = 1
[[runs]]
name = "a"
optimizer = { name = "sgd", lr = 0.05 }
"""


def test_an_answer_after_a_runs_end_frees_its_room() -> None:
    loaded = load_preset_text(PRESET)
    (spec,) = loaded.resolved_runs("cpu")
    runner = Runner([spec], load_dataset(loaded.preset.data), "cpu")
    run = runner._runs[spec.name] = DrivenRun(spec, state="ended", inflight=1)
    runner._handle(Reply("advanced", spec.name))  # the second request's empty answer
    assert run.inflight == 0
    runner._handle(Reply("advanced", spec.name))  # never below zero
    assert run.inflight == 0
    run.inflight = 2
    runner._handle(Reply("lost", spec.name))  # its worker died: nothing of it is in flight
    assert run.inflight == 0 and run.state == "ended"
