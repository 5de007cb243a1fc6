"""The tuning screen's fold (`optlab.tuning.live`), no terminal and no training: the trial rules,
the drawn values, a resumed trial, tune.json taken as written."""

from __future__ import annotations

import math

from optlab.training.events import EpochEnded, Event, ExperimentEnded, ExperimentStarted, RunEnded, RunStarted
from optlab.tuning.live import TuneLog, TuneSettings, drawn

PRESET = {"name": "p", "train": {}, "runs": [{"name": "sgd", "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}},
                                             {"name": "adam", "optimizer": {"name": "adam", "lr": 1e-3}}]}


def trial(run: str, lr: float, accs: list[float], status: str, **optimizer: object) -> list[Event]:
    name = "sgd" if run.startswith("sgd") else "adam"
    events: list[Event] = [RunStarted(run=run, spec={"optimizer": {"name": name, "lr": lr, **optimizer}},
                                      placement={"device": "cpu"})]
    events += [EpochEnded(run=run, epoch=i + 1, val_accuracy=a) for i, a in enumerate(accs)]
    return [*events, RunEnded(run=run, status=status)]


def study(pruner: str = "asha", objective: str = "val_accuracy") -> TuneLog:
    return TuneLog(TuneSettings(objective, pruner, 4, 2, ("sgd", "adam")))


def test_each_trial_ends_as_the_service_tells_it() -> None:
    log = study()
    changed = log.apply([ExperimentStarted(run="", preset=PRESET),
                         *trial("sgd#0", 0.01, [0.5, 0.7, 0.6], "finished", momentum=0.9),
                         *trial("sgd#1", 0.1, [0.4], "stopped", momentum=0.5),
                         *trial("adam#0", 1e-3, [0.8], "diverged", betas=[0.7, 0.999]),
                         *trial("adam#1", 1e-2, [], "finished"),
                         *trial("sgd@s1", 0.01, [0.7], "finished")])
    assert changed == {"sgd#0", "sgd#1", "adam#0", "adam#1"}  # the final seed run is not a trial
    got = {r: (t.status, t.value) for r, t in log.trials.items()}
    assert got == {"sgd#0": ("complete", 0.7), "sgd#1": ("pruned", 0.4), "adam#0": ("diverged", 0.0),
                   "adam#1": ("failed", 0.0)}
    # The values the study drew: momentum only where it differs from the preset's 0.9.
    assert log.trials["sgd#0"].params == {"lr": 0.01}
    assert log.trials["sgd#1"].params == {"lr": 0.1, "momentum": 0.5}
    assert log.trials["adam#0"].params == {"lr": 1e-3, "beta1": 0.7}
    assert log.candidates["sgd"].best is log.trials["sgd#0"] and log.candidates["adam"].best is None
    assert log.candidates["sgd"].sens_x == [-2.0, -1.0] and log.candidates["sgd"].sens_y == [0.7, 0.4]
    assert log.counts() == {"trials": 4, "ended": 4, "pruned": 1, "diverged": 1, "failed": 1}
    assert log.finals == {"sgd@s1": "finished"}


def test_a_stop_without_a_pruner_is_an_interrupt_and_a_loss_counts_lower() -> None:
    log = study(pruner="off", objective="val_loss")
    log.apply([RunStarted(run="sgd#0", spec={"optimizer": {"name": "sgd", "lr": 0.1}}),
               EpochEnded(run="sgd#0", epoch=1, val_loss=0.5), EpochEnded(run="sgd#0", epoch=2, val_loss=0.3),
               RunEnded(run="sgd#0", status="finished"),
               RunStarted(run="sgd#1", spec={"optimizer": {"name": "sgd", "lr": 0.1}}),
               RunEnded(run="sgd#1", status="stopped"),
               RunStarted(run="adam#0", spec={"optimizer": {"name": "adam", "lr": 0.1}}),
               RunEnded(run="adam#0", status="failed")])
    assert log.trials["sgd#0"].value == 0.3 and log.trials["sgd#1"].status == "interrupted"
    assert log.trials["adam#0"].value == math.inf  # the worst loss; no sensitivity dot
    assert log.candidates["adam"].sens_x == []


def test_a_resumed_trial_trains_again_and_tune_json_is_taken_as_written() -> None:
    log = study()
    log.apply([*trial("sgd#0", 0.01, [0.5], "stopped"), ExperimentEnded(run="", status="interrupted")])
    assert log.ended and log.trials["sgd#0"].status == "pruned"
    # `optlab resume`: the trial starts again from its checkpoint, repeating epoch 1.
    log.apply([RunStarted(run="sgd#0", spec={"optimizer": {"name": "sgd", "lr": 0.01}})])
    assert not log.ended and log.trials["sgd#0"].status == "running" and log.candidates["sgd"].ended == 0
    log.apply([EpochEnded(run="sgd#0", epoch=1, val_accuracy=0.5), EpochEnded(run="sgd#0", epoch=2, val_accuracy=0.9),
               RunEnded(run="sgd#0", status="finished"), *trial("adam#0", 1e-3, [0.3], "diverged")])
    assert log.trials["sgd#0"].value == 0.9 and log.candidates["sgd"].ended == 1
    log.adopt({"candidates": [
        {"name": "sgd", "trials": [{"run": "sgd#0", "status": "complete", "value": 0.9, "params": {"lr": 0.01}}]},
        {"name": "adam", "trials": [{"run": "adam#0", "status": "diverged", "value": None, "params": {"lr": 1e-3}}]},
    ]})
    assert log.adopted and log.trials["adam#0"].value == 0.0  # null in JSON: the worst value
    assert log.counts()["diverged"] == 1 and log.candidates["sgd"].best_so_far == [0.9]


def test_drawn_compares_betas_with_adams_defaults() -> None:
    assert drawn({"name": "adam", "lr": 1e-3, "betas": [0.9, 0.95]}, {}) == {"lr": 1e-3, "beta2": 0.95}
    assert drawn({"name": "adam", "lr": 1e-3, "betas": [0.8, 0.95]}, {"betas": [0.8, 0.95]}) == {"lr": 1e-3}
