"""Aggregates over seeds equal numpy's, the ranking's verdict, and time to target on a scripted
history, through the results fold and into the reports."""

from __future__ import annotations

import csv
import io
import math
import warnings
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from optlab.runs.aggregate import (
    aggregate,
    groups,
    history_bands,
    rank_groups,
    ranked_groups,
    stats,
    welch_p,
)
from optlab.runs.reports import summary_rows, to_csv, to_markdown
from optlab.runs.results import replay
from optlab.runs.target import time_to_target
from optlab.training.events import EpochEnded, ExperimentEnded, ExperimentStarted, RunEnded, RunStarted

ACC = {"adam": [0.91, 0.93, 0.92], "sgd": [0.905, 0.945, 0.915], "bad": [0.5, 0.52, 0.51]}


def seeded_results(values: dict[str, list[float]], statuses: dict[str, str] | None = None) -> dict[str, Any]:
    runs = []
    for group, accs in values.items():
        for seed, acc in enumerate(accs):
            name = f"{group}@s{seed}"
            status = (statuses or {}).get(name, "finished")
            runs.append({
                "name": name,
                "status": status,
                "config": {"group": group, "seed": seed},
                "history": [
                    {"epoch": e, "val_loss": 1.0 / (e + seed), "val_accuracy": acc * e / 3,
                     "train_loss": 2.0 / (e + seed), "train_accuracy": None}
                    for e in (1, 2, 3)
                ],
                "wall_time_s": 1.0 + seed,
                "best_epoch": 3,
                "test": None if status in ("diverged", "failed") else {
                    "accuracy": acc, "loss": 1 - acc, "f1": acc - 0.01, "precision": acc, "recall": acc,
                    "specificity": 0.99, "roc_auc": None,
                },
            })
    return {"dataset": {"task": "multiclass"}, "preset": {"name": "p"}, "runs": runs}


def test_stats_equal_numpys_mean_and_sample_std() -> None:
    for values in ([0.91, 0.93, 0.92], [1.0, 2.0], [3.5, 1.25, 9.0, 4.0, 0.5]):
        s = stats(values)
        assert s["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert s["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        assert (s["n"], s["min"], s["max"]) == (len(values), min(values), max(values))
    assert stats([0.7]) == {"mean": 0.7, "std": None, "n": 1, "min": 0.7, "max": 0.7}
    assert stats([None, float("nan")])["n"] == 0


def test_group_aggregates_equal_numpy_over_the_per_seed_values() -> None:
    results = seeded_results(ACC)
    agg = aggregate(results)
    assert agg is not None and agg["std_ddof"] == 1
    by = {g["group"]: g for g in agg["groups"]}
    assert list(by) == ["adam", "sgd", "bad"] and by["adam"]["seeds"] == [0, 1, 2]
    for group, accs in ACC.items():
        acc = by[group]["test"]["accuracy"]
        assert acc["mean"] == pytest.approx(np.mean(accs)) and acc["std"] == pytest.approx(np.std(accs, ddof=1))
        assert by[group]["n"] == 3 and by[group]["statuses"] == {"finished": 3}
    band = by["adam"]["history"]["val_loss"]
    per_epoch = [[1.0 / (e + s) for s in range(3)] for e in (1, 2, 3)]
    assert [b["epoch"] for b in band] == [1, 2, 3]
    for point, values in zip(band, per_epoch, strict=True):
        assert point["mean"] == pytest.approx(np.mean(values))
        assert point["std"] == pytest.approx(np.std(values, ddof=1))
        assert (point["min"], point["max"]) == (min(values), max(values))
    assert by["adam"]["history"]["train_accuracy"][0]["n"] == 0  # undefined values are skipped
    # A run that stopped early counts only at the epochs it reached.
    short = [{"history": [{"epoch": 1, "val_loss": 1.0}]}, {"history": [{"epoch": 1, "val_loss": 3.0},
                                                                        {"epoch": 2, "val_loss": 2.0}]}]
    assert [(b["epoch"], b["n"], b["mean"]) for b in history_bands(short, "val_loss")] == [(1, 2, 2.0), (2, 1, 2.0)]


def test_diverged_seeds_leave_the_stats_and_show_in_the_statuses() -> None:
    results = seeded_results(ACC, {"sgd@s1": "diverged"})
    sgd = next(g for g in aggregate(results)["groups"] if g["group"] == "sgd")
    assert sgd["n"] == 2 and sgd["statuses"] == {"finished": 2, "diverged": 1}
    assert sgd["test"]["accuracy"]["mean"] == pytest.approx(np.mean([0.905, 0.915]))


def test_no_aggregates_without_repeated_seeds() -> None:
    results = seeded_results({"a": [0.9], "b": [0.8]})
    assert aggregate(results) is None and list(groups(results)) == ["a", "b"]
    # A run that has not started has no config yet: its name tells its group.
    assert list(groups({"runs": [{"name": "x@s0"}, {"name": "x@s1"}]})) == ["x"]


def test_welch_p_is_scipys() -> None:
    a, b = ACC["adam"], ACC["sgd"]
    assert welch_p(a, b) == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_p([0.9], b) is None


def test_ranking_says_when_the_top_two_are_not_distinguishable() -> None:
    ranking = rank_groups(seeded_results(ACC))
    assert ranking["order"] == ["sgd", "adam", "bad"] and ranking["metric"] == "accuracy"
    assert ranking["verdict"] == "not distinguishable" and ranking["p_value"] >= 0.05
    assert "not distinguishable" in ranking["text"] and "Welch" in ranking["text"]

    clear = rank_groups(seeded_results({"adam": ACC["adam"], "bad": ACC["bad"]}))
    assert clear["order"] == ["adam", "bad"] and clear["verdict"] == "distinguishable"
    assert clear["p_value"] < 0.05

    one_seed = rank_groups(seeded_results({"adam": [0.95], "sgd": [0.9, 0.91]}))
    assert one_seed["verdict"] == "cannot tell" and "fewer than 2 seeds" in one_seed["text"]

    loss = rank_groups(seeded_results(ACC), metric="loss")
    assert loss["order"][0] == "sgd" and loss["higher_is_better"] is False


def test_identical_values_have_no_spread_and_their_exact_mean() -> None:
    value = 0.9275766016713092  # three seeds of quickstart's sgd-momentum scored exactly this
    values = [value] * 3
    assert np.std(values, ddof=1) > 0  # numpy's own answer carries rounding noise here...
    assert stats(values) == {"mean": value, "std": 0.0, "n": 3, "min": value, "max": value}  # ...ours none
    assert stats([0.1, 0.1])["std"] == 0.0 and stats([0.1])["std"] is None


def test_zero_variance_groups_are_handled_without_scipys_warning() -> None:
    constant, varied = [0.9276] * 3, [0.9276, 0.9192, 0.9136]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, scipy's precision-loss one included, fails
        p = welch_p(constant, varied)
        # One constant side: the other side's variance carries the test.
        assert p is not None and p == pytest.approx(welch_p([0.9276, 0.9276 + 1e-12, 0.9276], varied), rel=1e-6)
        # Both constant: the test is undefined; the means alone decide.
        assert welch_p(constant, [0.9] * 2) is None
        differ = rank_groups(seeded_results({"a": [0.95] * 3, "b": [0.9] * 3}))
        same = rank_groups(seeded_results({"a": [0.95] * 3, "b": [0.95] * 2}))
        mixed = rank_groups(seeded_results({"a": constant, "b": varied}))
    assert differ["verdict"] == "distinguishable" and differ["p_value"] is None
    assert "no variance across seeds" in differ["text"]
    assert same["verdict"] == "not distinguishable" and "equal means" in same["text"]
    assert [r["label"] for r in same["ranks"]] == ["1", "1="]
    with warnings.catch_warnings():  # scipy's own call, as the reference, warns here
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = scipy_stats.ttest_ind(constant, varied, equal_var=False).pvalue
    assert mixed["p_value"] == pytest.approx(reference)
    agg = aggregate(seeded_results({"a": [0.95] * 3, "b": [0.9] * 3}))
    assert [g["test"]["accuracy"]["std"] for g in agg["groups"]] == [0.0, 0.0]


def test_every_configuration_is_ranked_against_the_holder_of_the_rank_above() -> None:
    values = {
        "c": [0.86, 0.87, 0.88], "a": [0.90, 0.91, 0.92], "b": [0.885, 0.90, 0.915],
        "d": [0.70, 0.72, 0.71], "e": [0.69], "f": [0.5, 0.6],
    }
    welch = {pair: scipy_stats.ttest_ind(values[pair[0]], values[pair[1]], equal_var=False).pvalue
             for pair in (("a", "b"), ("a", "c"), ("b", "c"), ("a", "d"), ("c", "d"), ("d", "f"))}
    # The scenario this test is about: b is not told apart from a, c is not told apart from b
    # but is from a; d is clearly behind.
    assert welch["a", "b"] >= 0.05 and welch["b", "c"] >= 0.05 and welch["a", "c"] < 0.05
    assert welch["a", "d"] < 0.05 and welch["c", "d"] < 0.05
    ranking = rank_groups(seeded_results(values))
    ranks = {r["group"]: r for r in ranking["ranks"]}
    assert ranking["order"] == ["a", "b", "c", "d", "e", "f"] == [r["group"] for r in ranking["ranks"]]
    f_label = "4=" if welch["d", "f"] >= 0.05 else "6"
    assert [r["label"] for r in ranking["ranks"]] == ["1", "1=", "3", "4", "5?", f_label]
    # c is compared with a (which holds rank 1), not with b just above it.
    assert ranks["c"]["versus"] == "a" and ranks["c"]["p_value"] == pytest.approx(welch["a", "c"])
    assert ranks["d"]["versus"] == "c" and ranks["d"]["verdict"] == "distinguishable"
    # e (one seed) cannot be told from anything, and does not hold a rank: f is compared with d.
    assert ranks["e"]["verdict"] == "cannot tell" and ranks["f"]["versus"] == "d"
    # A one-seed configuration between two comparable ones leaves them comparable.
    middle = {r["group"]: r for r in rank_groups(seeded_results(
        {"x": [0.90, 0.91, 0.92], "y": [0.85], "z": [0.50, 0.51, 0.52]}))["ranks"]}
    assert middle["y"]["label"] == "2?" and middle["z"]["versus"] == "x" and middle["z"]["label"] == "3"
    # The ranking's verdict on the top two is the second's rank.
    assert ranking["verdict"] == ranks["b"]["verdict"] == "not distinguishable"
    assert ranking["p_value"] == pytest.approx(welch["a", "b"])


def test_ranked_groups_follow_the_ranking_with_untested_configurations_last() -> None:
    results = seeded_results(ACC, {"bad@s0": "failed", "bad@s1": "diverged", "bad@s2": "failed"})
    results["aggregates"] = aggregate(results)
    got = [(g["group"], r and r["label"]) for g, r in ranked_groups(results)]
    assert got == [("sgd", "1"), ("adam", "1="), ("bad", None)]
    # results.json written before ranks existed: the ranks are computed from its runs.
    del results["aggregates"]["ranking"]["ranks"]
    assert [(g["group"], r and r["label"]) for g, r in ranked_groups(results)] == got


def test_reports_and_console_list_configurations_in_ranking_order() -> None:
    from rich.console import Console

    from optlab.console.tables import print_results

    results = seeded_results(ACC)  # preset order adam, sgd, bad; sgd has the best mean
    results["aggregates"] = aggregate(results)
    md = to_markdown(results)
    rows = [line for line in md.split("## Across seeds")[1].splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| rank | configuration | n | seeds |")
    assert [line.split(" | ")[:2] for line in rows[1:]] == [["| 1", "sgd"], ["| 1=", "adam"], ["| 3", "bad"]]
    assert "rank `k=`: not distinguishable" in md

    parsed = [r for r in csv.DictReader(io.StringIO(to_csv(results))) if r["kind"] != "run"]
    assert [(r["group"], r["kind"], r["rank"], r["rank_mark"]) for r in parsed] == [
        ("sgd", "mean", "1", ""), ("sgd", "std", "1", ""), ("adam", "mean", "1", "="), ("adam", "std", "1", "="),
        ("bad", "mean", "3", ""), ("bad", "std", "3", ""),
    ]

    console = Console(width=250, record=True, no_color=True)
    print_results(console, results)
    text = console.export_text().split("across seeds")[1]
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]
    assert [c[:2] for c in cells] == [["1", "sgd"], ["1=", "adam"], ["3", "bad"]]
    assert "ranking: sgd" in text and "not distinguishable" in text and "k=: not distinguishable" in text

    # A narrow terminal: the across-seeds table gives up its least telling columns, not its numbers.
    narrow = Console(width=110, record=True, no_color=True, force_terminal=True)
    print_results(narrow, results)
    text = narrow.export_text().split("across seeds")[1]
    assert "hidden for width: specificity" in text and "…" not in text
    assert all(len(line) <= 110 for line in text.splitlines())
    assert [line.strip("│").split("│")[1].strip() for line in text.splitlines() if line.startswith("│")] == [
        "sgd", "adam", "bad"]


# ------------------------------------------------------------------ time to target

HISTORY = [
    {"epoch": 1, "val_accuracy": 0.80, "val_loss": 0.9, "samples_seen": 1000, "epoch_s": 1.5},
    {"epoch": 2, "val_accuracy": float("nan"), "val_loss": 0.6, "samples_seen": 2000, "epoch_s": 1.5},
    {"epoch": 3, "val_accuracy": 0.951, "val_loss": 0.4, "samples_seen": 3000, "epoch_s": 1.5},
    {"epoch": 4, "val_accuracy": 0.97, "val_loss": 0.5, "samples_seen": 4000, "epoch_s": 1.5},
]


def test_time_to_target_on_a_scripted_history() -> None:
    hit = time_to_target(HISTORY, {"metric": "val_accuracy", "value": 0.95})
    assert hit == {"reached": True, "epoch": 3, "samples_seen": 3000, "wall_time_s": 4.5}
    # Losses are reached from above; the first epoch at or below the value counts.
    assert time_to_target(HISTORY, {"metric": "val_loss", "value": 0.6})["epoch"] == 2
    missed = time_to_target(HISTORY, {"metric": "val_accuracy", "value": 0.99})
    assert missed == {"reached": False, "epoch": None, "samples_seen": None, "wall_time_s": None}
    assert time_to_target(HISTORY, None) is None
    assert time_to_target(list(reversed(HISTORY)), {"metric": "val_accuracy", "value": 0.95})["epoch"] == 3


def scripted_events(target: dict[str, Any] | None, seed_step: float = 0.01) -> list[Any]:
    """Two configurations x two seeds whose val accuracy climbs at different speeds (seed 1
    `seed_step` above seed 0 at every epoch)."""
    names = ["fast@s0", "fast@s1", "slow@s0", "slow@s1"]
    events: list[Any] = [ExperimentStarted(run="", preset={"name": "t", "target": target},
                                           dataset={"task": "multiclass"}, run_names=names)]
    for name in names:
        group, seed = name.split("@s")
        events.append(RunStarted(run=name, spec={"group": group, "seed": int(seed)}))
        step = 0.3 if group == "fast" else 0.1
        for epoch in (1, 2, 3):
            events.append(EpochEnded(run=name, epoch=epoch, val_accuracy=0.5 + step * epoch + seed_step * int(seed),
                                     val_loss=1.0, train_loss=1.0, samples_seen=100 * epoch,
                                     epoch_s=0.5, elapsed_s=0.5 * epoch))
        acc = 0.9 if group == "fast" else 0.7
        events.append(RunEnded(run=name, status="finished", epochs_completed=3,
                               test={"accuracy": acc + 0.01 * int(seed), "loss": 0.3}))
    events.append(ExperimentEnded(run=""))
    return events


def test_the_results_fold_records_time_to_target_and_aggregates() -> None:
    doc = replay(scripted_events({"metric": "val_accuracy", "value": 0.75}))
    runs = {r["name"]: r for r in doc["runs"]}
    assert runs["fast@s0"]["time_to_target"] == {"reached": True, "epoch": 1, "samples_seen": 100,
                                                 "wall_time_s": 0.5}
    assert runs["slow@s0"]["time_to_target"]["epoch"] == 3 and runs["slow@s1"]["time_to_target"]["epoch"] == 3
    assert runs["fast@s0"]["history"][0]["samples_seen"] == 100
    agg = doc["aggregates"]
    fast = agg["groups"][0]
    assert fast["group"] == "fast" and fast["time_to_target"]["reached"] == 2 and fast["time_to_target"]["of"] == 2
    assert fast["test"]["accuracy"]["mean"] == pytest.approx(0.905)
    assert agg["ranking"]["order"] == ["fast", "slow"]
    assert replay(scripted_events(None))["runs"][0]["time_to_target"] is None


def test_reports_show_runs_aggregates_and_target() -> None:
    doc = replay(scripted_events({"metric": "val_accuracy", "value": 0.85}))
    rows = {r["name"]: r for r in summary_rows(doc)}
    assert rows["fast@s0"]["target_epoch"] == 2 and rows["slow@s0"]["target_reached"] is False
    assert rows["fast@s1"]["group"] == "fast" and rows["fast@s1"]["seed"] == 1

    md = to_markdown(doc)
    assert "| target epoch | target samples | target time |" in md and "not reached" in md
    assert "## Across seeds" in md and "sample standard deviation (ddof = 1)" in md
    fast_acc = np.array([0.9, 0.91])
    assert f"| 1 | fast | 2 | 0, 1 | {fast_acc.mean():.4f} ± {fast_acc.std(ddof=1):.4f} |" in md
    assert "**Ranking:** fast" in md and "| 2 of 2 |" in md and "| 0 of 2 | - | - | - |" in md

    parsed = list(csv.DictReader(io.StringIO(to_csv(doc))))
    kinds = [(r["name"], r["kind"]) for r in parsed]
    assert kinds[:4] == [("fast@s0", "run"), ("fast@s1", "run"), ("slow@s0", "run"), ("slow@s1", "run")]
    assert kinds[4:] == [("fast", "mean"), ("fast", "std"), ("slow", "mean"), ("slow", "std")]
    assert [r["rank"] for r in parsed] == ["", "", "", "", "1", "1", "2", "2"]
    mean, std = parsed[4], parsed[5]
    assert float(mean["accuracy"]) == pytest.approx(fast_acc.mean())
    assert float(std["accuracy"]) == pytest.approx(fast_acc.std(ddof=1)) and mean["n"] == "2"
    assert parsed[2]["target_reached"] == "False" and parsed[2]["target_epoch"] == ""
    assert math.isclose(float(parsed[0]["target_time_s"]), 1.0)


def test_console_table_shows_mean_std_and_n() -> None:
    from rich.console import Console

    from optlab.console.tables import print_results

    console = Console(width=200, record=True, no_color=True)
    print_results(console, replay(scripted_events(None)))
    text = console.export_text()
    assert "across seeds" in text and "0.9050 ± 0.0071" in text and "ranking: fast" in text


def test_across_seeds_tables_show_time_to_target() -> None:
    from rich.console import Console

    from optlab.console.tables import print_results
    from optlab.runs.formatting import format_duration

    # Seed 1 climbs 0.1 above seed 0: fast reaches 0.85 at epochs 2 and 1, slow only with seed 1.
    doc = replay(scripted_events({"metric": "val_accuracy", "value": 0.85}, seed_step=0.1))
    hits = {name: [r["time_to_target"] for r in doc["runs"] if r["name"].startswith(name)] for name in ("fast", "slow")}
    fast = [t for t in hits["fast"] if t["reached"]]
    slow = [t for t in hits["slow"] if t["reached"]]
    assert len(fast) == 2 and len(slow) == 1

    def spread(key: str, fmt: Any) -> str:
        xs = np.array([t[key] for t in fast], dtype=float)
        return f"{fmt(xs.mean())} ± {fmt(xs.std(ddof=1))}"

    want_fast = ["2 of 2", spread("epoch", lambda v: f"{v:.1f}"), spread("samples_seen", lambda v: f"{v:,.0f}"),
                 spread("wall_time_s", format_duration)]
    want_slow = ["1 of 2", f"{slow[0]['epoch']:.1f}", f"{slow[0]['samples_seen']:,}",
                 format_duration(slow[0]["wall_time_s"])]
    assert want_fast[1] == "1.5 ± 0.7"  # the values differ across seeds, so the std shows

    md = to_markdown(doc)
    assert "| reached target | target epoch | target samples | target time |" in md.split("## Across seeds")[1]
    assert "| " + " | ".join(want_fast) + " |" in md and "| " + " | ".join(want_slow) + " |" in md

    console = Console(width=250, record=True, no_color=True)
    print_results(console, doc)
    text = console.export_text().split("across seeds")[1]
    assert "reached target" in text and "target samples" in text
    cells = {c[1]: c for line in text.splitlines() if line.startswith("│")
             for c in [[x.strip() for x in line.strip("│").split("│")]]}
    assert cells["fast"][-4:] == want_fast and cells["slow"][-4:] == want_slow
