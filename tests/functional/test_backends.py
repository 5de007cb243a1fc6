"""Where runs train does not change what they compute: `local` and `processes` give the same
histories, fingerprints and test metrics; a worker killed mid-epoch costs nothing but time;
bad backend options are refused before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from optlab.data.datasets import load_dataset
from optlab.preset.loader import load_preset_text
from optlab.training.checkpoint_policy import EVERY_EPOCH
from optlab.training.events import EpochEnded, Progress, RunEnded, RunStarted
from optlab.training.executor import LocalExecutor
from optlab.training.processes import ProcessExecutor, parse_devices
from optlab.training.runner import Control, Runner

PRESET = """
name = "backends"
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [32]
dropout = 0.3
[train]
epochs = 3
batch_size = 32
seed = 3
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
scheduler = { name = "cosine" }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
[[runs]]
name = "rms"
optimizer = { name = "rmsprop", lr = 1e-3 }
"""


def optlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optlab", *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )


def comparable(run: dict) -> dict:
    """What must not depend on the backend: everything but wall-clock time and placement."""
    return {
        "status": run["status"],
        "fingerprints": (run["init_fingerprint"], run["data_fingerprint"]),
        "history": [{k: v for k, v in h.items() if k != "epoch_s"} for h in run["history"]],
        "test": run["test"],
    }


class Collect:
    def __init__(self) -> None:
        self.events: list = []

    def handle(self, event) -> None:
        self.events.append(event)


def local_events(specs, data) -> Collect:
    """The uninterrupted reference, with one torch thread like each worker below."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sink = Collect()
        Runner(specs, data, "cpu", [sink]).run()
        return sink
    finally:
        torch.set_num_threads(threads)


def epoch_records(sink: Collect, run: str) -> dict[int, tuple]:
    """Each epoch's numbers, the latest report of an epoch winning (as in results.json)."""
    out = {}
    for e in sink.events:
        if isinstance(e, EpochEnded) and e.run == run:
            out[e.epoch] = (e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.lr, e.samples_seen)
    return out


def assert_restarted_from_a_checkpoint(starts: list[RunStarted]) -> None:
    """Started twice: from scratch, then from the last epoch's checkpoint the driver had when
    the worker died (epoch 1 or 2: a remote worker's reply may carry a whole epoch)."""
    first, again = starts
    assert first.resumed_step == 0
    assert again.resumed_step in (first.steps_per_epoch, 2 * first.steps_per_epoch)


def ended(sink: Collect, run: str) -> RunEnded:
    return next(e for e in sink.events if isinstance(e, RunEnded) and e.run == run)


@pytest.mark.slow
def test_processes_backend_matches_local_and_records_placement(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(PRESET)
    local = optlab("compare", "p.toml", "--out", "local", "-q", "-f", "json", "--threads", "1", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    procs = optlab(
        "compare", "p.toml", "--out", "procs", "-q", "-f", "json", "--backend", "processes",
        "--devices", "cpu,cpu", cwd=tmp_path,
    )
    assert procs.returncode == 0, procs.stderr
    a = json.loads((tmp_path / "local/results.json").read_text())
    b = json.loads((tmp_path / "procs/results.json").read_text())
    assert [r["name"] for r in a["runs"]] == [r["name"] for r in b["runs"]] == ["sgd", "adam", "rms"]
    for ra, rb in zip(a["runs"], b["runs"], strict=True):
        assert ra["status"] == "finished"
        assert comparable(ra) == comparable(rb), ra["name"]
    assert b["device"] == "cpu,cpu"
    local_pids = {r["placement"]["pid"] for r in a["runs"]}
    assert [r["placement"]["backend"] for r in a["runs"]] == ["local"] * 3 and len(local_pids) == 1
    placements = [r["placement"] for r in b["runs"]]
    assert all(p["backend"] == "processes" and p["device"] == "cpu" and p["gpu"] is None for p in placements)
    assert all(p["host"] == placements[0]["host"] for p in placements)
    # Runs are dealt to the two workers in order: the first and third share one.
    pids = [p["pid"] for p in placements]
    assert pids[0] == pids[2] != pids[1] and not local_pids & set(pids)


class KillWorker:
    """SIGKILLs the worker of `run` when that run reports a step in the middle of `epoch`,
    `times` times at most (each time on the worker the run then trains on)."""

    def __init__(self, run: str, epoch: int, times: int = 1) -> None:
        self.run, self.epoch, self.left = run, epoch, times
        self.pid: int | None = None
        self.killed: list[int] = []

    def handle(self, event) -> None:
        if event.run != self.run:
            return
        if isinstance(event, RunStarted):
            self.pid = event.placement["pid"]
        elif isinstance(event, Progress) and event.epoch == self.epoch and self.left and self.pid:
            os.kill(self.pid, signal.SIGKILL)
            self.killed.append(self.pid)
            self.left -= 1
            self.pid = None


@pytest.mark.slow
def test_worker_killed_mid_epoch_restarts_from_its_checkpoint_to_the_same_results() -> None:
    loaded = load_preset_text(PRESET)
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data)
    reference = local_events(specs, data)

    killer = KillWorker("adam", epoch=2)
    sink = Collect()
    Runner(specs, data, "cpu", [killer, sink], executor=ProcessExecutor(["cpu", "cpu"], threads=1),
           checkpoints=EVERY_EPOCH).run()

    assert len(killer.killed) == 1
    starts = [e for e in sink.events if isinstance(e, RunStarted) and e.run == "adam"]
    assert_restarted_from_a_checkpoint(starts)
    assert starts[1].placement["pid"] != killer.killed[0]
    for run in ("sgd", "adam", "rms"):
        assert epoch_records(sink, run) == epoch_records(reference, run), run
        got, want = ended(sink, run), ended(reference, run)
        assert (got.status, got.test, got.epochs_completed, got.step) == (want.status, want.test, 3, want.step)


@pytest.mark.slow
def test_a_run_whose_worker_keeps_dying_fails_alone_after_max_restarts() -> None:
    loaded = load_preset_text(PRESET.replace("epochs = 3", "epochs = 2"))
    specs = loaded.resolved_runs("cpu")
    data = load_dataset(loaded.preset.data)
    killer = KillWorker("sgd", epoch=1, times=2)
    sink = Collect()
    executor = ProcessExecutor(["cpu", "cpu"], threads=1)
    Runner(specs, data, "cpu", [killer, sink], executor=executor, max_restarts=1).run()
    assert len(killer.killed) == 2
    # A worker's death counts against every run it held: rms shared sgd's worker (runs are dealt
    # in order), adam trained on the other one and never noticed.
    for run in ("sgd", "rms"):
        failed = ended(sink, run)
        assert failed.status == "failed"
        assert "worker died 2 times" in failed.reason and "exited with code -9" in failed.reason
        assert "max restarts 1" in failed.reason
    assert ended(sink, "adam").status == "finished"
    assert epoch_records(sink, "adam") == epoch_records(local_events(specs[1:2], data), "adam")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "cpu,cpu"], "--devices cpu,cpu: only the processes backend takes it; add --backend processes"),
        (["--backend", "processes", "--devices", "cpu,gpu"], "'gpu' is not a device"),
        (["--backend", "processes", "--devices", ""], "is not a device"),
    ],
)
def test_bad_backend_options_are_one_line_and_exit_2_before_anything_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from optlab.cli.main import app

    (tmp_path / "p.toml").write_text(PRESET)
    out = tmp_path / "out" / "run"
    for command in (["compare", str(tmp_path / "p.toml"), "--out", str(out)], ["resume", str(tmp_path)]):
        result = CliRunner().invoke(app, [*command, "-q", *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("optlab: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_devices_without_cuda_are_refused() -> None:
    from optlab.errors import OptlabError

    for text in ("cuda", "cuda:0,cuda:1", "cpu,cuda:0"):
        with pytest.raises(OptlabError, match="CUDA is not available here"):
            parse_devices(text)


def test_device_lists_parse() -> None:
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert parse_devices(" cpu ") == ["cpu"]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert parse_devices("cuda") == [f"cuda:{i}" for i in range(n)]
        with pytest.raises(Exception, match="does not exist"):
            parse_devices(f"cuda:{n}")


class SchedulerPicksTheLastRuns(LocalExecutor):
    """Room for two runs at once, given (as a Ray scheduler may) to the last two runs asked for:
    the first run's start is answered only once another run has ended and let its room go."""

    capacity = 2

    def __init__(self, data, device: str) -> None:
        super().__init__(data, device)
        self.held: tuple | None = None

    def start(self, spec, state) -> None:
        if self.held is None:
            self.held = ("start", spec, state)
        else:
            super().start(spec, state)

    def release(self, run: str) -> None:
        super().release(run)
        if self.held is not None:
            self._queue.append(self.held)
            self.held = None

    def slot(self, run: str) -> str:
        return run  # a worker per run, as on Ray: a waiting start holds up no other run


def test_the_first_wave_is_whichever_runs_get_room_first() -> None:
    """With pace "even" the driver waits until as many runs as fit are up, whichever they are:
    waiting for the first runs of the preset would wait for ever on one that waits for room."""
    loaded = load_preset_text(PRESET.replace("epochs = 3", "epochs = 1"))
    specs, data = loaded.resolved_runs("cpu"), load_dataset(loaded.preset.data)
    sink = Collect()
    runner = Runner(specs, data, "cpu", [sink], executor=SchedulerPicksTheLastRuns(data, "cpu"))
    driver = threading.Thread(target=runner.run, daemon=True)
    driver.start()
    driver.join(timeout=120)
    assert not driver.is_alive(), "the driver waited for a run that waited for room"
    starts = [e.run for e in sink.events if isinstance(e, RunStarted)]
    first_end = next(i for i, e in enumerate(sink.events) if isinstance(e, RunEnded))
    sgd_start = next(i for i, e in enumerate(sink.events) if isinstance(e, RunStarted) and e.run == "sgd")
    assert starts == ["adam", "rms", "sgd"] and sgd_start > first_end
    assert {e.run: e.status for e in sink.events if isinstance(e, RunEnded)} == dict.fromkeys(("sgd", "adam", "rms"), "finished")


class ClusterBusyElsewhere(SchedulerPicksTheLastRuns):
    """Counts room for all three runs, but another job holds one place: the first run starts
    only once one of the others has ended."""

    capacity = 3


def test_the_first_wave_goes_ahead_when_the_rest_does_not_come_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared cluster where other jobs hold what `capacity` counted: the runs that did start
    wait FIRST_WAVE_WAIT_S for the others at most, then train (and free the room)."""
    import optlab.training.runner as runner

    monkeypatch.setattr(runner, "FIRST_WAVE_WAIT_S", 0.5)
    loaded = load_preset_text(PRESET.replace("epochs = 3", "epochs = 1"))
    specs, data = loaded.resolved_runs("cpu"), load_dataset(loaded.preset.data)
    sink = Collect()
    driver = threading.Thread(target=Runner(specs, data, "cpu", [sink],
                                            executor=ClusterBusyElsewhere(data, "cpu")).run, daemon=True)
    driver.start()
    driver.join(timeout=120)
    assert not driver.is_alive(), "the first wave waited for ever"
    assert {e.run: e.status for e in sink.events if isinstance(e, RunEnded)} == dict.fromkeys(("sgd", "adam", "rms"), "finished")


class CountsInFlight(LocalExecutor):
    """A worker per run holding up to two requests, as on processes and Ray; notes the most
    requests any run had in flight and the most reports one reply carried."""

    depth = 2

    def __init__(self, data, device: str) -> None:
        super().__init__(data, device)
        self.most_in_flight = 0
        self.most_reports = 0
        self.most_epochs = 0  # the most epoch ends one reply carried

    def slot(self, run: str) -> str:
        return run

    def advance(self, run: str, checkpoints, budget_s: float = 0.0, past_epoch_ends: bool = False) -> None:
        super().advance(run, checkpoints, budget_s, past_epoch_ends)
        self.most_in_flight = max(self.most_in_flight, sum(1 for r in self._queue if r[1] == run))

    def collect(self, timeout: float):
        replies = super().collect(timeout)
        for reply in replies:
            self.most_reports = max(self.most_reports, sum(e["type"] == "progress" for e in reply.events))
            self.most_epochs = max(self.most_epochs, sum(e["type"] == "epoch_ended" for e in reply.events))
        return replies


@pytest.mark.parametrize(("pipeline_below_s", "pipelined"), [(60.0, True), (0.0, False)])
def test_short_intervals_are_batched_and_pipelined_and_long_ones_are_not(
    pipeline_below_s: float, pipelined: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a remote worker, short intervals go several to a request and two requests in flight
    (fewer round trips, none waited for); past PIPELINE_BELOW_S one interval at a time, so a
    pause or stop acts within one interval. What the run computes is the same either way."""
    import optlab.training.pipelining as pipelining

    monkeypatch.setattr(pipelining, "PIPELINE_BELOW_S", pipeline_below_s)
    monkeypatch.setattr(pipelining, "BATCH_S", 60.0)  # a request then trains to the run's end
    loaded = load_preset_text(PRESET.replace("epochs = 3", "epochs = 2"))
    specs, data = loaded.resolved_runs("cpu")[:1], load_dataset(loaded.preset.data)
    executor = CountsInFlight(data, "cpu")
    sink = Collect()
    Runner(specs, data, "cpu", [sink], executor=executor).run()
    assert (executor.most_in_flight, executor.most_reports > 1) == ((2, True) if pipelined else (1, False))
    # Short intervals: a request crosses epoch ends (the driver decides nothing there).
    assert executor.most_epochs == (2 if pipelined else 1)
    reference = local_events(specs, data)
    assert epoch_records(sink, "sgd") == epoch_records(reference, "sgd")
    assert ended(sink, "sgd").test == ended(reference, "sgd").test
    epoch_ends = [e.step for e in sink.events if isinstance(e, EpochEnded)]
    assert epoch_ends == [e.step for e in reference.events if isinstance(e, EpochEnded)]


@pytest.mark.parametrize("why", ["epoch decisions", "a checkpoint at every epoch"])
def test_a_request_stops_at_each_epoch_end_where_the_driver_needs_it(why: str, monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """Where a sink decides at epoch ends (a pruner) or each epoch end has a checkpoint, no
    request crosses one; the checkpoints a crossing request carries are the ones an epoch-bound
    run writes, at the same epochs (the state kept at a reply's last epoch end)."""
    import optlab.training.pipelining as pipelining
    from optlab.runs.store import RunStore

    monkeypatch.setattr(pipelining, "PIPELINE_BELOW_S", 60.0)
    monkeypatch.setattr(pipelining, "BATCH_S", 60.0)
    loaded = load_preset_text(PRESET)
    specs, data = loaded.resolved_runs("cpu")[:1], load_dataset(loaded.preset.data)
    executor = CountsInFlight(data, "cpu")
    (tmp_path / "run").mkdir()
    store = RunStore(tmp_path / "run")
    decide = why == "epoch decisions"
    Runner(specs, data, "cpu", [store], executor=executor, epoch_decisions=decide,
           checkpoints=None if decide else EVERY_EPOCH).run()
    store.close()
    assert executor.most_epochs == 1
    saved = torch.load(tmp_path / "run/runs/sgd/checkpoint-last.pt", weights_only=False)
    assert saved["epoch"] == 3


class PauseAtFirstReport(Control):
    """Pauses at the first report and resumes `for_s` seconds later from another thread, as the
    TUI does through the control file; notes when each report reached the driver."""

    def __init__(self, for_s: float = 3.0) -> None:
        super().__init__()
        self.for_s = for_s
        self.paused_at: float | None = None
        self.resumed_at: float | None = None
        self.reports: list[float] = []

    def handle(self, event) -> None:
        if not isinstance(event, Progress):
            return
        self.reports.append(time.monotonic())
        if self.paused_at is None:
            self.paused_at = time.monotonic()
            self.pause()
            threading.Timer(self.for_s, self._resume).start()

    def _resume(self) -> None:
        self.resumed_at = time.monotonic()
        self.resume()

    def assert_paused_within(self, seconds: float) -> None:
        """Reports stopped within `seconds` of the pause (what was in flight) and came again
        after the resume."""
        assert self.paused_at is not None and self.resumed_at is not None
        late = [t - self.paused_at for t in self.reports if self.paused_at + seconds < t < self.resumed_at]
        assert not late, f"reports {late} s after the pause"
        assert any(t > self.resumed_at for t in self.reports)


@pytest.mark.slow
def test_pause_acts_on_process_workers_and_resume_changes_nothing() -> None:
    loaded = load_preset_text(PRESET.replace("epochs = 3", "epochs = 2"))
    specs, data = loaded.resolved_runs("cpu"), load_dataset(loaded.preset.data)
    reference = local_events(specs, data)
    control = PauseAtFirstReport()
    sink = Collect()
    Runner(specs, data, "cpu", [control, sink], control, executor=ProcessExecutor(["cpu", "cpu"], threads=1)).run()
    control.assert_paused_within(1.0)
    for run in ("sgd", "adam", "rms"):
        assert epoch_records(sink, run) == epoch_records(reference, run), run
        assert ended(sink, run).test == ended(reference, run).test


@pytest.mark.slow
def test_workers_started_ahead_train_the_runs_to_the_same_results() -> None:
    """`compare` starts the processes workers before the driver imports torch; the executor
    takes those workers (no second start), and what they compute is local's."""
    from optlab.training import processes

    loaded = load_preset_text(PRESET.replace("epochs = 3", "epochs = 2"))
    processes.prespawn(["cpu", "cpu"], 1, [], loaded.preset.data)
    ahead = {w.process.pid for w in processes._ready}
    specs, data = loaded.resolved_runs("cpu"), load_dataset(loaded.preset.data)
    sink = Collect()
    Runner(specs, data, "cpu", [sink], executor=ProcessExecutor(["cpu", "cpu"], threads=1)).run()
    pids = {e.placement["pid"] for e in sink.events if isinstance(e, RunStarted)}
    assert pids == ahead and not processes._ready
    reference = local_events(specs, data)
    for run in ("sgd", "adam", "rms"):
        assert epoch_records(sink, run) == epoch_records(reference, run), run
        assert ended(sink, run).test == ended(reference, run).test


def test_workers_started_ahead_exit_with_a_command_that_stops_before_training(tmp_path: Path) -> None:
    """A command refused after its workers started (here `--device cuda` on a machine without
    CUDA, or any later check) exits promptly with its one line, and leaves no worker behind."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA for the refusal")
    (tmp_path / "p.toml").write_text(PRESET)
    script = (
        "import sys\nfrom optlab.training import processes\n"
        "real = processes.prespawn\n"
        "def tell(*args, **kwargs):\n"
        "    real(*args, **kwargs)\n"
        "    print(*[w.process.pid for w in processes._ready], file=sys.stderr, flush=True)\n"
        "processes.prespawn = tell\n"
        "from optlab.cli.main import run\n"
        "sys.argv = ['optlab', 'compare', 'p.toml', '--out', 'x', '-q', '--backend', 'processes',"
        " '--devices', 'cpu,cpu', '--device', 'cuda']\n"
        "run()\n"
    )
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    pids = [int(p) for p in lines[0].split()]
    assert len(pids) == 2 and lines[1].startswith("optlab: error: --device cuda") and len(lines) == 2
    assert not (tmp_path / "x").exists()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), f"workers left behind after {time.monotonic() - t0:.1f} s"


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status
