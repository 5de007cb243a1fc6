"""`--backend ray --fuse auto` against a real local Ray (no mocks): each fusion group trains in
one actor, to exactly the numbers of local `--fuse auto` at the same thread count, also when
the cluster fits fewer runs than a group holds; a lost group actor restarts its runs, each
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


def compare(tmp_path: Path, out: str, *args: str) -> dict[str, Any]:
    (tmp_path / "p.toml").write_text(FUSE_PRESET.replace("epochs = 1", "epochs = 2"))
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
