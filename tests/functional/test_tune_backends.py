"""`optlab tune` on the other backends: the same study on `processes --devices cpu,cpu` as on
`local` (the engine is deterministic per seed with one torch thread), a study on a real local
Ray, and the backend options checked before anything is written. Real Optuna on SQLite."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optlab.cli.main import app

optuna = pytest.importorskip("optuna")

REPO = Path(__file__).resolve().parents[2]
TINY = """
name = "tiny"
[data]
dataset = "digits"
train_limit = 200
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 2
batch_size = 32
[tune]
budget = 3
final_seeds = 1
parallel = 2
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""
# One torch thread on every backend: the numbers compared must not depend on the split of sums.
ARGS = ("--device", "cpu", "--threads", "1", "-q")


def study(root: Path, names: tuple[str, ...] = ("sgd", "adam")) -> dict[str, list[tuple[Any, ...]]]:
    """Every trial of every candidate: number, state, params, value, per-epoch values."""
    out = {}
    for name in names:
        loaded = optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'study.db'}")
        out[name] = [(t.number, t.state.name, t.params, t.value, t.intermediate_values) for t in loaded.trials]
    return out


def tune(tmp_path: Path, out: str, *args: str) -> tuple[int, str]:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    result = CliRunner().invoke(app, ["tune", str(preset), "--out", str(tmp_path / out), *ARGS, *args])
    return result.exit_code, result.output


def placements(root: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r["placement"] for r in json.loads((root / "results.json").read_text())["runs"]}


@pytest.mark.slow
@pytest.mark.parametrize("fuse", ["off", "auto"])
def test_a_study_on_processes_equals_the_local_one(tmp_path: Path, fuse: str) -> None:
    code, output = tune(tmp_path, "local", "--fuse", fuse)
    assert code == 0, output
    code, output = tune(tmp_path, "procs", "--backend", "processes", "--devices", "cpu,cpu", "--fuse", fuse)
    assert code == 0, output
    assert study(tmp_path / "procs") == study(tmp_path / "local")
    where = placements(tmp_path / "procs")
    assert {p["backend"] for p in where.values()} == {"processes"}
    assert {p["device"] for p in where.values()} == {"cpu"} and os.getpid() not in {p["pid"] for p in where.values()}
    # The two workers are spawned once and train every wave (and the final seeds).
    assert len({p["pid"] for p in where.values()}) == 2
    if fuse == "off":
        assert not any("fused" in p for p in where.values())
        return
    # A wave's 4 trials (2 per candidate, one seed) are one fusion group locally; on 2 workers
    # it is cut in two (a worker's share), each part trained as one stack by one worker. The
    # final seeds fuse too.
    assert all("fused" in p for p in where.values())
    first = {name: (p["fused"]["group"], p["fused"]["size"], p["pid"]) for name, p in where.items()
             if name in ("sgd#0", "sgd#1", "adam#0", "adam#1")}
    assert len(first) == 4 and {size for _, size, _ in first.values()} == {2}
    assert len({group for group, _, _ in first.values()}) == len({pid for _, _, pid in first.values()}) == 2
    assert len({(group, pid) for group, _, pid in first.values()}) == 2  # a group on one worker
    finals = {(where[name]["fused"]["group"], where[name]["pid"]) for name in ("sgd@s1", "adam@s1")}
    assert len(finals) == 1
    assert {name: p["fused"]["size"] for name, p in placements(tmp_path / "local").items()} == {
        "sgd#0": 4, "sgd#1": 4, "adam#0": 4, "adam#1": 4, "sgd#2": 2, "adam#2": 2, "sgd@s1": 2, "adam@s1": 2}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--devices", "cpu,cpu"], "--devices cpu,cpu: only the processes backend takes it"),
        (["--backend", "processes", "--devices", "gpu"], "'gpu' is not a device"),
        (["--address", "auto"], "--address auto: only the ray backend takes it"),
        (["--backend", "processes", "--cpus-per-run", "2"], "--cpus-per-run 2.0: only the ray backend takes it"),
    ],
)
def test_bad_backend_options_are_one_line_and_nothing_is_written(tmp_path: Path, args: list[str], expected: str) -> None:
    code, output = tune(tmp_path, "out", *args)
    assert code == 2, output
    assert expected in output and len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray of 2 CPUs for this module (no GPUs: the trials train on the CPU); its workers
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


@pytest.mark.slow
def test_a_study_on_a_local_ray_equals_the_local_one(tmp_path: Path, local_ray: Any) -> None:
    # Both fused (tune's default): a wave's group trains in one Ray actor as it does locally.
    code, output = tune(tmp_path, "local", "--run", "sgd")
    assert code == 0, output
    code, output = tune(tmp_path, "ray", "--backend", "ray", "--cpus-per-run", "0.5", "--run", "sgd")
    assert code == 0, output
    local, on_ray = study(tmp_path / "local", ("sgd",)), study(tmp_path / "ray", ("sgd",))
    assert on_ray["sgd"] == local["sgd"] and len(on_ray["sgd"]) == 3
    where = placements(tmp_path / "ray")
    assert {p["backend"] for p in where.values()} == {"ray"}
    assert where["sgd#0"]["fused"] == where["sgd#1"]["fused"] == {"group": "fuse-1", "size": 2}
    assert where["sgd#0"]["pid"] == where["sgd#1"]["pid"]  # one actor for the wave's group
    assert "fused" not in where["sgd#2"] and "fused" not in where["sgd@s1"]  # alone in their waves


def test_resume_of_a_study_takes_the_backend_options(tmp_path: Path) -> None:
    code, output = tune(tmp_path, "out", "--run", "sgd", "--budget", "1", "--final-seeds", "1")
    assert code == 0, output
    root = str(tmp_path / "out")
    refused = CliRunner().invoke(app, ["resume", root, "--devices", "cpu,cpu", "-q"])
    assert refused.exit_code == 2
    assert "--devices cpu,cpu: only the processes backend takes it" in refused.output
    assert len(refused.output.strip().splitlines()) == 1, refused.output
    before = study(tmp_path / "out", ("sgd",))
    again = CliRunner().invoke(app, ["resume", root, "--backend", "processes", "--devices", "cpu,cpu", "-q"])
    assert again.exit_code == 0, again.output
    assert study(tmp_path / "out", ("sgd",)) == before  # nothing was left to train


@pytest.mark.slow
def test_a_study_on_processes_is_balanced_and_equals_the_local_one(tmp_path: Path, monkeypatch: Any) -> None:
    """Each wave's driver moves a trial (forced, once per wave) under a pruner's epoch
    decisions: the study's trials are the local study's still."""
    from optlab.training import runner
    from optlab.training.balance import Balancer, Move

    made: list[Move] = []

    class MoveOne(Balancer):
        def consider(self, runs: Any, executor: Any) -> list[Move]:
            if self.moved or any(r.moving is not None or r.rejoining for r in runs.values()):
                return []
            for name, run in runs.items():
                # In its first half: the request in flight must not take it to its end first.
                if run.state == "active" and 0 < run.step < run.total_steps // 2 and not run.stopping \
                        and executor.movable(name) and run.moves == 0:
                    source = executor.slot(name)
                    return [Move(name, source, executor.peers(source)[0])]
            return []

        def done(self, move: Move, handed: bool) -> None:
            super().done(move, handed)
            if handed:
                made.append(move)

    monkeypatch.setattr(runner, "Balancer", MoveOne)
    code, output = tune(tmp_path, "local", "--prune", "median", "--fuse", "off")
    assert code == 0, output
    code, output = tune(tmp_path, "procs", "--backend", "processes", "--devices", "cpu,cpu", "--prune", "median",
                         "--fuse", "off")  # fused trials stay with their part
    assert code == 0, output
    assert made  # trials did move between the workers
    assert study(tmp_path / "procs") == study(tmp_path / "local")
