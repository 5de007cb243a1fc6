"""The console progress prints each run's notes once on stderr (the CPU "mixed precision is off"
note would otherwise only be in results.json and report.md), one line for a note every run has."""

from __future__ import annotations

import io

from rich.console import Console

from optlab.console.progress import ConsoleProgress
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    ExperimentStarted,
    Progress,
    RunEnded,
    RunStarted,
)

AMP = "amp = 'bf16' is off: mixed precision needs CUDA, this run is on CPU"


def notes_printed(events: list[Event]) -> list[str]:
    buf = io.StringIO()
    sink = ConsoleProgress(Console(file=buf, force_terminal=False, width=200))
    for event in events:
        sink.handle(event)
    sink.close()
    return [line.strip() for line in buf.getvalue().splitlines() if line.startswith("note:")]


def started(notes: dict[str, list[str]]) -> list[Event]:
    return [ExperimentStarted(run="", run_names=list(notes)),
            *(RunStarted(run=run, spec={"epochs": 1}, total_steps=10, notes=n) for run, n in notes.items())]


def test_a_note_every_run_has_is_printed_once_for_all_runs() -> None:
    events = [*started({"a@s0": [AMP], "a@s1": [AMP], "b@s0": [AMP]}),
              Progress(run="a@s0", step=1, epoch=1, train_loss=1.0, samples_per_s=10.0),
              EpochEnded(run="a@s0", epoch=1, step=10), ExperimentEnded(run="")]
    assert notes_printed(events) == [f"note: all runs: {AMP}"]


def test_notes_only_some_runs_have_are_printed_per_run() -> None:
    events = [*started({"a": [AMP, "other"], "b": [], "c": [AMP]}),
              Progress(run="a", step=1, epoch=1, train_loss=1.0, samples_per_s=10.0)]
    assert notes_printed(events) == [f"note: a: {AMP}", "note: a: other", f"note: c: {AMP}"]
    # One run alone is named, not "all runs".
    assert notes_printed(started({"solo": [AMP]})) == [f"note: solo: {AMP}"]
    assert notes_printed(started({"a": [], "b": []})) == []


def test_a_note_every_seed_of_a_configuration_has_is_printed_once_for_it() -> None:
    fused = "not fused: momentum differs"
    events = [*started({"adam@s0": [AMP, fused], "adam@s1": [AMP, fused], "adam@s2": [AMP, fused],
                        "sgd@s0": [AMP], "sgd@s1": [AMP, "only this seed"]}),
              Progress(run="adam@s0", step=1, epoch=1, train_loss=1.0, samples_per_s=10.0)]
    assert notes_printed(events) == [f"note: all runs: {AMP}", f"note: adam (3 seeds): {fused}",
                                     "note: sgd@s1: only this seed"]
    # The group comes from the run's spec when it has one (a name need not end in @sN).
    spec = {"epochs": 1, "group": "adam"}
    events = [ExperimentStarted(run="", run_names=["x", "y", "z"]),
              RunStarted(run="x", spec=spec, notes=[fused]), RunStarted(run="y", spec=spec, notes=[fused]),
              RunStarted(run="z", spec={"epochs": 1, "group": "sgd"}), ExperimentEnded(run="")]
    assert notes_printed(events) == [f"note: adam (2 seeds): {fused}"]


def test_notes_come_out_when_training_begins_and_late_runs_still_say_theirs() -> None:
    buf = io.StringIO()
    sink = ConsoleProgress(Console(file=buf, force_terminal=False, width=200))
    for event in started({"a": [AMP], "b": [AMP]}):
        sink.handle(event)
    assert "note:" not in buf.getvalue()  # kept until every run has started...
    sink.handle(Progress(run="a", step=1, epoch=1, train_loss=1.0, samples_per_s=10.0))
    assert buf.getvalue().count("note:") == 1  # ...then said at once, before the bars finish
    # A run that starts later (or again, resumed) with a note the "all runs" line did not cover.
    sink.handle(RunStarted(run="c", notes=["late note", AMP]))
    sink.handle(RunStarted(run="c", notes=["late note"]))  # the same note again is not repeated
    sink.handle(RunEnded(run="c", status="finished"))
    sink.close()
    lines = [line for line in buf.getvalue().splitlines() if line.startswith("note:")]
    assert lines == [f"note: all runs: {AMP}", "note: c: late note"]
