"""The run directory survives what happens on shared machines: SIGKILL, a full disk, an
unwritable folder, a run that fails. Driven through the real `optlab` command."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch
from typer.testing import CliRunner

from optlab.cli.main import app
from optlab.runs.control import write_control
from optlab.runs.store import read_events
from optlab.training.events import RunEnded, RunStarted

# Long enough (in epochs) that the test can pause it mid-way on any machine, small enough
# per epoch to stay quick. Dropout and a scheduler make the resumed RNG and LR state matter.
KILLABLE = """
name = "killable"
description = "Two runs to kill and resume."
[data]
dataset = "digits"
[model]
name = "mlp"
hidden = [48]
dropout = 0.2
[train]
epochs = 20
batch_size = 16
seed = 7
[[runs]]
name = "momentum"
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
scheduler = { name = "cosine" }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""

SMALL = """
name = "small"
description = "Two quick runs."
[data]
dataset = "digits"
train_limit = 300
[model]
name = "mlp"
hidden = [16]
[train]
epochs = 3
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
"""


# One thread: these models are tiny, and it keeps the test fast when other work shares the cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def optlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optlab", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=240
    )


def comparable(root: Path) -> dict[str, Any]:
    results = json.loads((root / "results.json").read_text())
    out = {}
    for run in results["runs"]:
        history = [{k: v for k, v in h.items() if k != "epoch_s"} for h in run["history"]]
        out[run["name"]] = (run["status"], history, run["test"], run["init_fingerprint"])
    return out


def ended_runs(root: Path) -> set[str]:
    return {e.run for e in read_events(root).events if isinstance(e, RunEnded)}


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    preset = tmp_path / "killable.toml"
    preset.write_text(KILLABLE)
    straight = optlab("compare", str(preset), "--out", "straight", "--quiet", "--device", "cpu", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr

    root = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-m", "optlab", "compare", str(preset), "--out", str(root), "--quiet", "--device", "cpu",
         "--checkpoint-every", "1"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Once both runs have an epoch checkpoint, pause (honoured between chunks, so inside an
        # epoch), then kill without warning: nothing gets a chance to clean up.
        checkpoints = [root / "runs" / name / "checkpoint-last.pt" for name in ("momentum", "adam")]
        deadline = time.monotonic() + 120
        while not all(p.is_file() for p in checkpoints):
            assert child.poll() is None, "compare ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        write_control(root, paused=True)
        time.sleep(0.5)
        # A second writer on a directory that is being trained into is refused, --force or not.
        for extra in ((), ("--force",)):
            refused = invoke("resume", str(root), "--quiet", *extra)
            assert refused.exit_code == 2
            assert "still training into it" in refused.output and f"pid {child.pid}" in refused.output
        assert "(live)" in invoke("runs", "--dir", str(tmp_path)).output
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert ended_runs(root) == set(), "the kill came too late to test resuming"
    assert "not training: optlab resume" in invoke("runs", "--dir", str(tmp_path)).output

    resumed = optlab("resume", str(root), "--quiet", "--device", "cpu", "--format", "json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming momentum (from epoch" in resumed.stderr
    assert json.loads(resumed.stdout)["runs"][0]["status"] == "finished"
    assert comparable(root) == comparable(tmp_path / "straight")
    # Finished training leaves no owner behind (the killed one's record was taken over).
    assert not (root / "owner.json").exists() and not (tmp_path / "straight" / "owner.json").exists()

    again = optlab("resume", str(root), "--quiet", "--device", "cpu", cwd=tmp_path)
    assert again.returncode == 0
    assert "nothing to resume" in again.stderr


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})


def test_resume_of_something_that_is_not_a_run_dir(tmp_path: Path) -> None:
    result = invoke("resume", str(tmp_path))
    assert result.exit_code == 2
    assert "not a run directory" in result.output and "Traceback" not in result.output


def test_disk_full_mid_run_stops_with_the_reason_and_keeps_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optlab.runs.store as store

    preset = tmp_path / "small.toml"
    preset.write_text(SMALL)
    real_write = store.atomic_write_bytes
    checkpoints = 0

    def filling_disk(path: Path, data: bytes) -> None:
        nonlocal checkpoints
        if path.name.startswith("checkpoint"):
            checkpoints += 1
            if checkpoints > 2:  # the disk fills up during epoch 2
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", filling_disk)
    root = tmp_path / "out"
    result = invoke("compare", str(preset), "--out", str(root), "--quiet", "--device", "cpu", "--checkpoint-every", "1")
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and str(root) in result.output
    assert "Traceback" not in result.output
    results = json.loads((root / "results.json").read_text())  # still whole and valid
    assert {r["status"] for r in results["runs"]} == {"stopped"}
    assert all(len(r["history"]) >= 1 for r in results["runs"])
    assert torch.load(root / "runs" / "sgd" / "checkpoint-last.pt", weights_only=True)["epoch"] == 1
    assert read_events(root).bad_lines == []
    assert not (root / "owner.json").exists()

    monkeypatch.undo()  # space again: the stopped runs go on from their last checkpoints
    resumed = invoke("resume", str(root), "--quiet", "--device", "cpu", "--format", "json")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming sgd (from epoch 1)" in resumed.output
    assert {r["status"] for r in json.loads((root / "results.json").read_text())["runs"]} == {"finished"}


def test_resume_closes_an_experiment_whose_end_a_full_disk_kept_from_the_record(tmp_path: Path) -> None:
    preset = tmp_path / "small.toml"
    preset.write_text(SMALL)
    root = tmp_path / "out"
    done = invoke("compare", str(preset), "--out", str(root), "--quiet", "--device", "cpu")
    assert done.exit_code == 0, done.output
    # What a disk that filled after the last run's end leaves: no experiment_ended, results.json
    # still `running`, the dead process's owner record.
    events = root / "events.jsonl"
    events.write_text("".join(line for line in events.read_text().splitlines(True) if "experiment_ended" not in line))
    stale = json.loads((root / "results.json").read_text())
    (root / "results.json").write_text(json.dumps({**stale, "status": "running"}))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (root / "owner.json").write_text(json.dumps({"pid": int(ended.stdout), "host": os.uname().nodename}))

    resumed = invoke("resume", str(root), "--quiet", "--device", "cpu", "--format", "json")
    assert resumed.exit_code == 0, resumed.output
    assert "nothing to resume" in resumed.output
    results = json.loads((root / "results.json").read_text())
    assert results["status"] == "finished"
    assert [r["status"] for r in results["runs"]] == ["finished", "finished"]
    assert read_events(root).events[-1].kind == "experiment_ended"
    assert not (root / "owner.json").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unwritable_output_directory_is_refused_before_training(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = invoke("compare", "quickstart", "--out", str(locked / "run"), "--quiet")
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2
    assert "not writable" in result.output and str(locked / "run") in result.output
    assert list(locked.iterdir()) == []


def test_out_of_memory_fails_that_run_with_a_hint_and_the_others_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optlab.training import trainer as trainer_module

    real_advance = trainer_module.Trainer.advance

    def advance(self: Any) -> Any:
        if self.spec.name == "adam" and self.step > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_advance(self)

    monkeypatch.setattr(trainer_module.Trainer, "advance", advance)
    preset = tmp_path / "small.toml"
    preset.write_text(SMALL)
    root = tmp_path / "out"
    result = invoke("compare", str(preset), "--out", str(root), "--quiet", "--format", "json")
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads((root / "results.json").read_text())["runs"]}
    assert runs["sgd"]["status"] == "finished"
    assert runs["adam"]["status"] == "failed"
    assert "out of memory" in runs["adam"]["reason"] and "smaller batch_size" in runs["adam"]["reason"]
    assert "OutOfMemoryError" in (root / "runs" / "adam" / "log.txt").read_text()


def test_an_exception_in_one_run_is_contained_with_its_traceback_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optlab.training import trainer as trainer_module

    real_advance = trainer_module.Trainer.advance

    def advance(self: Any) -> Any:
        if self.spec.name == "sgd" and self.epoch >= 1:
            raise ZeroDivisionError("a bug in a custom piece")
        return real_advance(self)

    monkeypatch.setattr(trainer_module.Trainer, "advance", advance)
    preset = tmp_path / "small.toml"
    preset.write_text(SMALL)
    root = tmp_path / "out"
    result = invoke("compare", str(preset), "--out", str(root), "--quiet")
    assert result.exit_code == 0, result.output
    runs = {r["name"]: r for r in json.loads((root / "results.json").read_text())["runs"]}
    assert runs["adam"]["status"] == "finished"
    assert runs["sgd"]["status"] == "failed" and "ZeroDivisionError" in runs["sgd"]["reason"]
    log = (root / "runs" / "sgd" / "log.txt").read_text()
    assert "Traceback" in log and "a bug in a custom piece" in log


@pytest.mark.parametrize(("presses", "gap_s"), [(1, 0.0), (2, 0.05), (2, 0.4)])
def test_ctrl_c_stops_with_130_and_keeps_whole_files(tmp_path: Path, presses: int, gap_s: float) -> None:
    preset = tmp_path / "killable.toml"
    preset.write_text(KILLABLE)
    root = tmp_path / "interrupted"
    child = subprocess.Popen(
        [sys.executable, "-m", "optlab", "compare", str(preset), "--out", str(root), "--quiet", "--device", "cpu",
         "--checkpoint-every", "1"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (root / "runs" / "adam" / "checkpoint-last.pt").is_file():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    # A second Ctrl-C leaves at once, without corrupting anything, whether it comes during the
    # clean-up or after it, while the process is already on its way out.
    for press in range(presses):
        if press:
            time.sleep(gap_s)
        child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    results = json.loads((root / "results.json").read_text())
    assert results["runs"] and {r["status"] for r in results["runs"]} <= {"stopped", "running"}
    assert read_events(root).bad_lines == []
    if presses == 1:
        assert {r["status"] for r in results["runs"]} == {"stopped"}
        assert f"optlab resume {root}" in " ".join(stderr.split())


def test_sigterm_stops_like_ctrl_c_and_resume_finishes_the_runs(tmp_path: Path) -> None:
    """A cluster scheduler preempts with SIGTERM: the runs stop as with Ctrl-C, the directory
    is closed (no owner left, results.json not `running`) and `resume` trains the rest."""
    preset = tmp_path / "killable.toml"
    preset.write_text(KILLABLE.replace("epochs = 20", "epochs = 6"))
    root = tmp_path / "preempted"
    child = subprocess.Popen(
        [sys.executable, "-m", "optlab", "compare", str(preset), "--out", str(root), "--quiet", "--device", "cpu",
         "--checkpoint-every", "1"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (root / "runs" / "adam" / "checkpoint-last.pt").is_file():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "terminated (SIGTERM)" in stderr and f"optlab resume {root}" in " ".join(stderr.split())
    results = json.loads((root / "results.json").read_text())
    assert results["status"] == "interrupted"
    assert {r["status"] for r in results["runs"]} == {"stopped"}
    assert not (root / "owner.json").exists()
    assert read_events(root).bad_lines == []

    resumed = optlab("resume", str(root), "--quiet", "--device", "cpu", "--format", "json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming momentum (from epoch" in resumed.stderr
    assert [r["status"] for r in json.loads(resumed.stdout)["runs"]] == ["finished", "finished"]


def test_output_directory_that_cannot_be_created_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("compare", "quickstart", "--out", str(blocker / "run"), "--quiet")
    assert result.exit_code == 2
    assert "not writable" in result.output and str(blocker / "run") in result.output
    assert "Traceback" not in result.output
    assert blocker.read_text() == "not a folder"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMALL trained once; tests copy it and cut its end off, as a kill would have."""
    folder = tmp_path_factory.mktemp("small")
    (folder / "small.toml").write_text(SMALL)
    result = invoke("compare", str(folder / "small.toml"), "--out", str(folder / "run"), "--quiet")
    assert result.exit_code == 0, result.output
    return folder / "run"


def killed_copy(small_run: Path, dest: Path) -> Path:
    """A copy of the run directory as a SIGKILL after its last checkpoint leaves it."""
    shutil.copytree(small_run, dest)
    events = dest / "events.jsonl"
    kept = [line for line in events.read_text().splitlines(keepends=True)
            if json.loads(line)["type"] not in ("run_ended", "experiment_ended")]
    events.write_text("".join(kept))
    return dest


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_resume_force_refuses_a_model_whose_shape_changed_before_touching_anything(
    tmp_path: Path, small_run: Path
) -> None:
    root = killed_copy(small_run, tmp_path / "run")
    preset = tomllib.loads((root / "preset.toml").read_text())
    preset["model"]["hidden"] = [32]
    (root / "preset.toml").write_text(tomli_w.dumps(preset))
    before = snapshot(root)
    result = invoke("resume", str(root), "--force", "--quiet")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "size mismatch" not in result.output
    assert result.stderr.startswith(f"optlab: error: {root}: cannot resume, not even with --force:\n")
    assert "  sgd: its model's shape changed (model.hidden: [16] -> [32];" in result.stderr
    assert "--force cannot resume a run whose model shape, optimizer or scheduler changed" in result.stderr
    assert "start a new experiment instead" in result.stderr
    assert snapshot(root) == before  # not even an owner.json: nothing was touched


def test_resume_of_a_junk_checkpoint_is_one_clear_error(tmp_path: Path, small_run: Path) -> None:
    root = killed_copy(small_run, tmp_path / "run")
    (root / "runs" / "sgd" / "checkpoint-last.pt").write_text("junk\n")
    before = snapshot(root)
    result = invoke("resume", str(root), "--quiet")
    assert result.exit_code == 2, result.output
    checkpoint = root / "runs" / "sgd" / "checkpoint-last.pt"
    assert result.stderr.startswith(f"optlab: error: {checkpoint}: not a valid optlab checkpoint, refused to load it (")
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr and "Traceback" not in result.output
    assert snapshot(root) == before


def test_resume_after_the_core_code_changed_needs_force(tmp_path: Path, small_run: Path) -> None:
    root = killed_copy(small_run, tmp_path / "run")
    for name in ("sgd", "adam"):
        path = root / "runs" / name / "checkpoint-last.pt"
        state = torch.load(path, weights_only=True)
        state["code_fingerprint"] = "0123456789abcdef"
        torch.save(state, path)
    refused = invoke("resume", str(root), "--quiet")
    assert refused.exit_code == 2
    assert "sgd: checkpoint written by code 0123456789abcdef, this is code" in refused.stderr
    assert "Use --force to resume anyway." in refused.stderr
    forced = invoke("resume", str(root), "--quiet", "--force", "--format", "json")
    assert forced.exit_code == 0, forced.output
    assert [r["status"] for r in json.loads(forced.stdout)["runs"]] == ["finished", "finished"]


def test_resume_refuses_data_files_that_changed_unless_forced(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 7 / 7:.3f},{(i * 3) % 5 / 5:.3f},{i % 2}" for i in range(120))
    (tmp_path / "points.csv").write_text("a,b,label\n" + rows + "\n")
    (tmp_path / "csv.toml").write_text(
        'name = "csv"\n[data]\ndataset = "csv"\npath = "points.csv"\n[model]\nhidden = [8]\n'
        '[train]\nepochs = 2\nbatch_size = 16\n[[runs]]\nname = "sgd"\noptimizer = { name = "sgd", lr = 0.1 }\n'
    )
    result = invoke("compare", str(tmp_path / "csv.toml"), "--out", str(tmp_path / "done"), "--quiet")
    assert result.exit_code == 0, result.output
    run = killed_copy(tmp_path / "done", tmp_path / "run")
    (tmp_path / "points.csv").write_text("a,b,label\n" + rows.replace("0.000,", "0.001,", 1) + "\n")

    refused = invoke("resume", str(run), "--quiet")
    assert refused.exit_code == 2
    assert "the dataset's files changed since the runs started" in refused.output
    assert "(points.csv: size or sha256 differ" in refused.output and "--force" in refused.output
    assert invoke("resume", str(run), "--quiet", "--force").exit_code == 0


def test_resume_trains_with_the_recorded_threads_and_says_when_told_otherwise(tmp_path: Path) -> None:
    """The thread count is part of a run: a plain resume goes on with the count each run
    recorded; another count is allowed, with one line saying the numbers will differ."""
    (tmp_path / "small.toml").write_text(SMALL)
    try:
        trained = invoke("compare", str(tmp_path / "small.toml"), "--out", str(tmp_path / "run"), "--quiet",
                         "--threads", "2", "--device", "cpu")
        assert trained.exit_code == 0, trained.output
        plain = killed_copy(tmp_path / "run", tmp_path / "plain")
        result = invoke("resume", str(plain), "--quiet", "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert "note:" not in result.stderr
        resumed = [e for e in read_events(plain).events if isinstance(e, RunStarted) and e.resumed_step]
        assert resumed and {e.placement["threads"] for e in resumed} == {2}

        told = killed_copy(tmp_path / "run", tmp_path / "told")
        result = invoke("resume", str(told), "--quiet", "--device", "cpu", "--threads", "1")
        assert result.exit_code == 0, result.output
        for run in ("sgd", "adam"):
            assert (f"optlab: note: {run} resumes with torch threads 1 (recorded: 2): its numbers will differ"
                    in result.stderr)
    finally:
        torch.set_num_threads(1)
