"""The ray backend against a real local Ray (no mocks): the same numbers as local, placement
with (fake) GPUs, a run beyond capacity waits and then trains, an actor killed mid-epoch costs
nothing but time, controls act, a missing extra and a silent address are one clear line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from functional.test_backends import (
    PRESET,
    Collect,
    KillWorker,
    PauseAtFirstReport,
    assert_restarted_from_a_checkpoint,
    ended,
    epoch_records,
    local_events,
)

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.checkpoint_policy import EVERY_EPOCH
from optlab.training.events import Progress, RunEnded, RunStarted
from optlab.training.runner import Control, Runner

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0  # Ray's own CI gives start-up 30 s; this box is shared and slow


def _env(**extra: str) -> dict[str, str]:
    """Ray's worker processes import optlab: from this checkout, installed or not."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


# The head started apart runs without token authentication (the user's ~/.ray/auth_token is
# none of this test's business); both sides say so, as Ray asks of a client given an address.
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """One local Ray for this module: 2 CPUs and 2 fake GPUs (torch sees no CUDA and trains on
    the CPU, while Ray schedules the GPUs as if they were there)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]
    try:
        ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    yield ray
    ray.shutdown()


def specs_and_data(epochs: int, runs: int = 3):
    loaded = load_preset_text(PRESET.replace("epochs = 3", f"epochs = {epochs}"))
    specs = loaded.resolved_runs("cpu")[:runs]
    return specs, load_dataset(loaded.preset.data)


def executor(data, **kwargs):
    from optlab.training.ray_executor import RayExecutor

    return RayExecutor(data, threads=1, **kwargs)


@pytest.mark.slow
def test_ray_matches_local_and_a_run_beyond_the_gpus_waits_then_trains(cluster) -> None:
    specs, data = specs_and_data(epochs=2)
    reference = local_events(specs, data)
    sink = Collect()
    Runner(specs, data, "cpu", [sink], executor=executor(data, gpus_per_run=1, cpus_per_run=0.5)).run()
    for run in ("sgd", "adam", "rms"):
        assert epoch_records(sink, run) == epoch_records(reference, run), run
        got, want = ended(sink, run), ended(reference, run)
        assert (got.status, got.test, got.step) == ("finished", want.test, want.step)
    starts = [e for e in sink.events if isinstance(e, RunStarted)]
    assert all(s.placement["backend"] == "ray" and s.placement["device"] == "cpu" for s in starts)
    assert len({s.placement["pid"] for s in starts}) == 3 and os.getpid() not in {s.placement["pid"] for s in starts}
    # Two fake GPUs, one per run: two runs start, the third waits for a GPU to come free.
    first_two = sorted(sink.events.index(s) for s in starts)[:2]
    third = max(sink.events.index(s) for s in starts)
    first_end = min(i for i, e in enumerate(sink.events) if isinstance(e, RunEnded))
    assert max(first_two) < first_end < third
    gpus = [s.placement["gpu_ids"] for s in sorted(starts, key=sink.events.index)]
    assert sorted(gpus[0] + gpus[1]) == ["0", "1"] and len(gpus[2]) == 1


@pytest.mark.slow
def test_ray_packs_fractional_gpus(cluster) -> None:
    specs, data = specs_and_data(epochs=1)
    sink = Collect()
    Runner(specs[:2], data, "cpu", [sink], executor=executor(data, gpus_per_run=0.5, cpus_per_run=0.5)).run()
    starts = [e for e in sink.events if isinstance(e, RunStarted)]
    first_end = min(i for i, e in enumerate(sink.events) if isinstance(e, RunEnded))
    assert all(sink.events.index(s) < first_end for s in starts)  # both fit at once
    assert [len(s.placement["gpu_ids"]) for s in starts] == [1, 1]


class StopAtFirstReport(Control):
    def __init__(self, run: str) -> None:
        super().__init__()
        self.run = run

    def handle(self, event) -> None:
        if isinstance(event, Progress) and event.run == self.run:
            self.stop(self.run)


@pytest.mark.slow
def test_ray_actor_killed_mid_epoch_recovers_exactly_and_stop_acts(cluster) -> None:
    specs, data = specs_and_data(epochs=3)
    reference = local_events(specs[:2], data)
    killer = KillWorker("adam", epoch=2)
    control = StopAtFirstReport("rms")
    sink = Collect()
    Runner(specs, data, "cpu", [killer, control, sink], control,
           executor=executor(data, gpus_per_run=0, cpus_per_run=1), checkpoints=EVERY_EPOCH).run()
    assert len(killer.killed) == 1
    starts = [e for e in sink.events if isinstance(e, RunStarted) and e.run == "adam"]
    assert_restarted_from_a_checkpoint(starts)
    for run in ("sgd", "adam"):
        assert epoch_records(sink, run) == epoch_records(reference, run), run
        assert ended(sink, run).test == ended(reference, run).test
    stopped = ended(sink, "rms")
    # Stopped within one reporting interval of the request (the first report).
    first = next(e for e in sink.events if isinstance(e, Progress) and e.run == "rms")
    assert stopped.status == "stopped" and stopped.step <= 2 * first.step


def test_missing_ray_extra_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from optlab.cli.main import app

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    (tmp_path / "p.toml").write_text(PRESET)
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "p.toml"), "--out", str(tmp_path / "out"),
                                      "-q", "--backend", "ray"])
    assert result.exit_code == 2
    assert result.stderr == 'optlab: error: the ray backend needs the ray extra: pip install "optlab[ray]"\n'
    assert not (tmp_path / "out").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def optlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=_env(**NO_AUTH))


@pytest.mark.slow
def test_compare_joins_a_ray_head_started_apart(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(PRESET.replace("epochs = 3", "epochs = 1"))
    silent = optlab("compare", "p.toml", "--out", "nowhere", "-q", "--backend", "ray",
                    "--address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert silent.returncode == 2 and "no Ray cluster answers there" in silent.stderr
    assert silent.stderr.count("\n") == 1 and not (tmp_path / "nowhere").exists()

    port = free_port()
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
         "--include-dashboard=false", "--block", "--disable-usage-stats"],
        cwd=tmp_path, env=_env(**NO_AUTH), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        address = f"127.0.0.1:{port}"
        too_many = optlab("compare", "p.toml", "--out", "greedy", "-q", "--backend", "ray", "--address", address,
                          "--gpus-per-run", "1", cwd=tmp_path)
        assert too_many.returncode == 2 and too_many.stderr.startswith("optlab: error: --gpus-per-run 1: no node")
        assert too_many.stderr.count("\n") == 1
        assert not (tmp_path / "greedy").exists()
        done = optlab("compare", "p.toml", "--out", "run", "-q", "-f", "json", "--backend", "ray",
                      "--address", address, "--cpus-per-run", "1", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        results = json.loads((tmp_path / "run" / "results.json").read_text())
        assert [r["status"] for r in results["runs"]] == ["finished"] * 3
        assert {r["placement"]["backend"] for r in results["runs"]} == {"ray"}
    finally:
        # The head this test started, through the process it started: never a machine-wide `ray stop`.
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        # `ray start` records its head for a later `ray.init()` and only `ray stop` forgets it:
        # forget ours, so that nobody's next `ray.init()` tries to join a head that is gone.
        record = Path("/tmp/ray/ray_current_cluster")
        with contextlib.suppress(OSError):
            if record.read_text().strip().endswith(f":{port}"):
                record.unlink()


@pytest.mark.slow
def test_ray_pause_acts_within_what_is_in_flight(cluster) -> None:
    specs, data = specs_and_data(epochs=2, runs=2)
    reference = local_events(specs, data)
    control = PauseAtFirstReport()
    sink = Collect()
    Runner(specs, data, "cpu", [control, sink], control,
           executor=executor(data, gpus_per_run=0, cpus_per_run=1)).run()
    control.assert_paused_within(1.0)
    for run in ("sgd", "adam"):
        assert epoch_records(sink, run) == epoch_records(reference, run), run
        assert ended(sink, run).test == ended(reference, run).test
