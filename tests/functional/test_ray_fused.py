"""`--backend ray --fuse auto` against a real local Ray (no mocks): each fusion group trains in
one actor, to exactly the numbers of local `--fuse auto` at the same thread count, also when
the cluster fits fewer runs than a group holds, and when it fits more actors than there are
groups (the group cut into parts, an actor each); a lost group actor restarts its runs, each
unfused in an actor of its own; the units' capacity the Runner waits for in its first wave."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functional.test_backends import (
    PRESET,
    Collect,
    KillWorker,
    assert_restarted_from_a_checkpoint,
    comparable,
    ended,
)
from functional.test_fuse_cli import PRESET as FUSE_PRESET
from typer.testing import CliRunner

from optlab.cli.main import app
from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.checkpoint_policy import EVERY_EPOCH
from optlab.training.events import RunEnded, RunStarted
from optlab.training.fused.plan import FusionPlan, split
from optlab.training.ray_fused import RESTARTED, unit_capacity
from optlab.training.runner import Runner

REPO = Path(__file__).resolve().parents[2]


def test_the_first_wave_counts_the_smallest_units_that_fit() -> None:
    # Ray picks which units get actors first: the Runner waits for no more runs than the
    # smallest units hold, and a group larger than the cluster still counts whole (one actor).
    assert unit_capacity([3, 1], 1) == 1
    assert unit_capacity([3, 1], 2) == 4
    assert unit_capacity([2, 5, 1], 2) == 3
    assert unit_capacity([8], 2) == 8


def parts_of(fusion: FusionPlan) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    for name, (pid, _) in fusion.groups.items():
        parts.setdefault(pid, []).append(name)
    assert all(fusion.groups[names[0]][1] == len(names) for names in parts.values())  # sizes as recorded
    return parts


def test_a_group_is_cut_to_fill_the_actors_the_cluster_fits() -> None:
    # FusedRayExecutor.replan cuts with the actors the cluster fits as bins (Ray places them).
    wave = [f"t{i}" for i in range(16)]
    parts, _ = split(FusionPlan(groups={name: ("fuse-1", 16) for name in wave}), wave, 4)
    assert parts_of(parts) == {f"fuse-1.{i + 1}": wave[4 * i:4 * i + 4] for i in range(4)}
    # The first wave: all four parts' actors fit at once, so every trial is up before any trains.
    assert unit_capacity([len(p) for p in parts_of(parts).values()], 4) == 16
    # About ceil(runs / actors) a unit; a group no larger than that, or that would leave a part
    # of one run, stays whole (one actor: a run alone gains nothing from fusing).
    three = ["a", "b", "c"]
    whole, _ = split(FusionPlan(groups={name: ("fuse-1", 3) for name in three}), three, 2)
    assert parts_of(whole) == {"fuse-1": three}
    mixed = FusionPlan(groups={name: ("fuse-1", 6) for name in wave[:6]}, reasons={"alone": "why"})
    cut, _ = split(mixed, [*wave[:6], "alone"], 2)
    assert parts_of(cut) == {"fuse-1.1": wave[:4], "fuse-1.2": wave[4:6]} and cut.reasons == {"alone": "why"}
    assert unit_capacity([4, 2, 1], 2) == 3  # the smallest two units may be the ones Ray starts first


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray of 2 CPUs for this module (no GPUs: the runs train on the CPU); its workers
    import optlab from this checkout."""
    ray = pytest.importorskip("ray")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old or "") if p)
    try:
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    yield ray
    ray.shutdown()


def compare(tmp_path: Path, out: str, *args: str, preset: str = FUSE_PRESET) -> dict[str, Any]:
    (tmp_path / "p.toml").write_text(preset.replace("epochs = 1", "epochs = 2"))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "p.toml"), "--out", str(tmp_path / out), "-q",
                                      "--no-charts", "--threads", "1", "--fuse", "auto", *args])
    assert result.exit_code == 0, result.output
    return {r["name"]: r for r in json.loads((tmp_path / out / "results.json").read_text())["runs"]}


def starts(root: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each run's RunStarted: its line in events.jsonl and the event."""
    lines = (root / "events.jsonl").read_text().splitlines()
    return {e["run"]: (i, e) for i, e in enumerate(map(json.loads, lines)) if e["type"] == "run_started"}


@pytest.mark.slow
def test_compare_on_ray_trains_each_group_in_one_actor_as_local_fuses(tmp_path: Path, local_ray: Any) -> None:
    local = compare(tmp_path, "local")
    # Two CPUs a run: the cluster fits one actor, fewer runs than the group holds.
    on_ray = compare(tmp_path, "ray", "--backend", "ray", "--cpus-per-run", "2")
    assert list(on_ray) == list(local) == ["sgd", "adam", "big-batch"]
    for name in local:
        assert local[name]["status"] == "finished"
        assert comparable(on_ray[name]) == comparable(local[name]), name
    where = {name: r["placement"] for name, r in on_ray.items()}
    assert {p["backend"] for p in where.values()} == {"ray"}
    group = {"group": "fuse-1", "size": 2}
    assert where["sgd"]["fused"] == where["adam"]["fused"] == group and "fused" not in where["big-batch"]
    assert local["sgd"]["placement"]["fused"] == group
    # One actor for the group, one for the run alone; neither is the driver.
    assert where["sgd"]["pid"] == where["adam"]["pid"] != where["big-batch"]["pid"]
    assert os.getpid() not in {p["pid"] for p in where.values()}
    events = starts(tmp_path / "ray")
    assert any(n.startswith("not fused: no other run shares") for n in events["big-batch"][1]["notes"])
    # One actor at a time: the group's two runs start together, the run alone before or after them.
    order = sorted(events, key=lambda name: events[name][0])
    assert order.index("sgd") + order.index("adam") in (1, 3)


# FUSE_PRESET's three runs one group, and a fourth: no L1 (a stack with an L1 member takes
# autograd's backward, one without it the written-out one, and the two round apart: a part
# without the group's L1 run would not train bit for bit as in the whole group).
FOUR = FUSE_PRESET.replace("batch_size = 64\n", "") + """[[runs]]
name = "rms"
optimizer = { name = "rmsprop", lr = 1e-3 }
"""


@pytest.mark.slow
def test_a_group_larger_than_its_share_of_the_actors_trains_in_parts_as_the_whole_group(
        tmp_path: Path, local_ray: Any) -> None:
    # One CPU a run: the cluster fits 2 actors, so the group of 4 is cut into two parts of 2,
    # each its own actor; local --fuse auto trains the 4 as one stack. Each run's matmuls are
    # its own rows of a batched matmul and its update its own slice: the same numbers exactly.
    local = compare(tmp_path, "local", preset=FOUR)
    on_ray = compare(tmp_path, "ray", "--backend", "ray", "--cpus-per-run", "1", preset=FOUR)
    assert list(on_ray) == list(local) == ["sgd", "adam", "big-batch", "rms"]
    assert {name: r["placement"]["fused"] for name, r in local.items()} == dict.fromkeys(local, {"group": "fuse-1",
                                                                                              "size": 4})
    where = {name: r["placement"] for name, r in on_ray.items()}
    assert {name: p["fused"] for name, p in where.items()} == {
        "sgd": {"group": "fuse-1.1", "size": 2}, "adam": {"group": "fuse-1.1", "size": 2},
        "big-batch": {"group": "fuse-1.2", "size": 2}, "rms": {"group": "fuse-1.2", "size": 2},
    }
    assert where["sgd"]["pid"] == where["adam"]["pid"] != where["big-batch"]["pid"] == where["rms"]["pid"]
    assert os.getpid() not in {p["pid"] for p in where.values()}
    for name in local:
        assert local[name]["status"] == "finished"
        assert comparable(on_ray[name]) == comparable(local[name]), name


@pytest.mark.slow
def test_a_lost_group_actor_restarts_each_run_unfused_in_an_actor_of_its_own(local_ray: Any) -> None:
    from optlab.training.ray_fused import FusedRayExecutor

    # Three epochs, the actor killed in the second: a request trains the group to its epoch's
    # end, so in the last epoch some runs could have ended before the kill.
    loaded = load_preset_text(PRESET)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data)
    executor = FusedRayExecutor(data, specs, gpus_per_run=0, cpus_per_run=1, threads=1)
    assert executor.depth == 1 and executor.slot("sgd") == executor.slot("rms")
    killer = KillWorker("adam", epoch=2)
    sink = Collect()
    Runner(specs, data, "cpu", [killer, sink], executor=executor, checkpoints=EVERY_EPOCH).run()
    assert len(killer.killed) == 1
    restarted = []
    for run in ("sgd", "adam", "rms"):
        # Every run of the group is lost with its actor, whichever had a request in flight.
        first, again = [e for e in sink.events if isinstance(e, RunStarted) and e.run == run]
        assert first.placement["fused"] == {"group": "fuse-1", "size": 3}
        assert first.placement["pid"] == killer.killed[0]
        assert "fused" not in again.placement and f"not fused: {RESTARTED}" in again.notes
        assert_restarted_from_a_checkpoint([first, again])
        restarted.append(again.placement["pid"])
        got = ended(sink, run)
        assert (got.status, got.epochs_completed, got.step) == ("finished", 3, 3 * first.steps_per_epoch), run
    assert len(set(restarted)) == 3 and killer.killed[0] not in restarted
    assert len([e for e in sink.events if isinstance(e, RunEnded)]) == 3
