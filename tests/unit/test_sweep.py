"""The sweep view (optlab.runs.sweep) on synthetic sweeps: per group, the metric against the
swept value, seeds as mean and band, diverged runs counted and marked, and the summary."""

from __future__ import annotations

import math

import pytest
from sweep_fixtures import accuracy, lr_label, sweep_doc

from optlab.runs.sweep import edge_value, summary_rows, sweep_view


def test_no_sweep_no_view() -> None:
    doc = sweep_doc()
    doc["preset"].pop("sweep")
    assert sweep_view(doc) is None


def test_each_optimizer_is_a_group_with_its_best_learning_rate_and_its_sensitivity() -> None:
    lrs = (1e-4, 1e-3, 1e-2, 1e-1)
    view = sweep_view(sweep_doc(optimizers=("sgd", "adam"), lrs=lrs))
    assert view is not None
    assert view.axis == "optimizer.lr" and view.log_x and view.x_label == "learning rate (log scale)"
    assert view.metric == "val_accuracy" and view.higher_is_better
    assert [x for x, _ in view.ticks] == pytest.approx([-4, -3, -2, -1])
    assert [label for _, label in view.ticks] == ["1e-4", "1e-3", "1e-2", "1e-1"]
    sgd, adam = view.groups
    assert (sgd.name, adam.name) == ("sgd", "adam")
    assert adam.best is not None and adam.best.setting == 1e-3
    assert adam.best.mean == pytest.approx(accuracy("adam", 1e-3))
    # one decade either side of adam's best costs `drop` (0.08) on both sides
    assert adam.sensitivity == pytest.approx(0.08)
    assert sgd.best is not None and sgd.best.setting == 1e-1  # at the edge: one neighbour only
    assert sgd.sensitivity == pytest.approx(0.08)
    assert sgd.ended == sgd.total == 4 and sgd.diverged == 0


def test_seeds_give_mean_and_min_max_band() -> None:
    view = sweep_view(sweep_doc(optimizers=("adam",), lrs=(1e-3, 1e-2), seeds=(0, 1, 2)))
    assert view is not None
    (adam,) = view.groups
    point = adam.points[0]
    expected = [accuracy("adam", 1e-3, s) for s in range(3)]
    assert len(point.runs) == 3 and point.mean == pytest.approx(sum(expected) / 3)
    assert (point.lo, point.hi) == (pytest.approx(min(expected)), pytest.approx(max(expected)))
    rows = summary_rows(view)
    assert rows[0]["band"] == f"{min(expected):.4f}–{max(expected):.4f}" and rows[0]["ended"] == "6/6"


def test_diverged_runs_are_counted_and_marked_at_the_worst_edge() -> None:
    view = sweep_view(sweep_doc(optimizers=("adam",), lrs=(1e-3, 1e-2, 1e-1), diverge_at=1e-1))
    assert view is not None
    (adam,) = view.groups
    top = adam.points[-1]
    assert top.all_diverged and top.mean is None and top.diverged == 1
    assert adam.diverged == 1 and adam.best is not None and adam.best.setting == 1e-3
    edge = edge_value(view)
    assert edge is not None and edge < min(v for p in adam.points for v in p.values)
    # adam's best is 1e-3: its one neighbour, 1e-2, did not diverge
    assert adam.sensitivity == pytest.approx(0.08)
    view = sweep_view(sweep_doc(optimizers=("adam",), lrs=(1e-4, 1e-3, 1e-2), diverge_at=1e-2))
    assert view is not None and math.isinf(view.groups[0].sensitivity or 0)
    assert summary_rows(view)[0]["sensitivity"] == "diverges"


def test_running_runs_wait_and_the_view_fills_in_as_runs_end() -> None:
    view = sweep_view(sweep_doc(optimizers=("sgd", "adam"), lrs=(1e-3, 1e-2), unfinished=2))
    assert view is not None
    sgd, adam = view.groups
    assert sgd.ended == 2 and adam.ended == 0 and adam.best is None
    rows = summary_rows(view)
    assert [r["group"] for r in rows] == ["sgd", "adam"]  # a group with no value yet comes last
    assert rows[1]["best"] == "-" and rows[1]["ended"] == "0/2"


def test_a_second_swept_axis_splits_the_groups() -> None:
    doc = sweep_doc(optimizers=("adam",), lrs=(1e-3, 1e-2), extra_sweep={"batch_size": [32, 64]})
    # the fixture names runs by lr only: one copy per batch size, named as expand() names them
    runs = []
    for run in doc["runs"]:
        for bs in (32, 64):
            copy = {**run, "name": f"{run['name']}-bs{bs}", "config": {**run["config"]}}
            copy["config"]["group"] = copy["name"]
            runs.append(copy)
    doc["runs"] = runs
    view = sweep_view(doc)
    assert view is not None and view.axis == "optimizer.lr"
    assert sorted(g.name for g in view.groups) == ["adam-bs32", "adam-bs64"]
    assert all(len(g.points) == 2 for g in view.groups)


def test_summary_is_best_group_first_with_its_setting() -> None:
    view = sweep_view(sweep_doc(optimizers=("sgd", "adam", "adamw"), lrs=(1e-3, 3e-3, 1e-2)))
    assert view is not None
    rows = summary_rows(view)
    assert rows[0]["group"] == "adam" and rows[0]["setting"] == lr_label(1e-3)
    assert [r["group"] for r in rows] == ["adam", "adamw", "sgd"]


def test_final_instead_of_best() -> None:
    view = sweep_view(sweep_doc(optimizers=("adam",), lrs=(1e-3, 1e-2)), reduce="final")
    assert view is not None and view.metric_label == "final validation accuracy"
