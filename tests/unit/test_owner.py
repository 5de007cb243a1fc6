"""The owner record tells a live experiment from one whose process died."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from optlab.runs.owner import OWNER_FILE, claim, read_owner, release


def test_claim_read_release(tmp_path: Path) -> None:
    assert read_owner(tmp_path) is None
    claim(tmp_path)
    owner = read_owner(tmp_path)
    assert owner is not None
    assert (owner.pid, owner.host, owner.alive) == (os.getpid(), socket.gethostname(), True)
    release(tmp_path)
    assert not (tmp_path / OWNER_FILE).exists()


def test_a_dead_process_is_not_alive_and_another_host_is_unknown(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    record = {"pid": dead_pid, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00"}
    (tmp_path / OWNER_FILE).write_text(json.dumps(record))
    owner = read_owner(tmp_path)
    assert owner is not None and owner.alive is False
    release(tmp_path)  # not ours: left for whoever reads it
    assert (tmp_path / OWNER_FILE).exists()

    (tmp_path / OWNER_FILE).write_text(json.dumps({**record, "pid": os.getpid(), "host": "elsewhere"}))
    owner = read_owner(tmp_path)
    assert owner is not None and owner.alive is None and "elsewhere" in owner.describe()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_an_unreaped_child_that_ended_counts_as_ended(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline  # ended but not reaped: kill(pid, 0) still succeeds
        time.sleep(0.01)
    claim_file = tmp_path / OWNER_FILE
    claim_file.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(), "started_at": "?"}))
    owner = read_owner(tmp_path)
    child.wait()
    assert owner is not None and owner.alive is False


def test_a_garbled_record_reads_as_no_owner(tmp_path: Path) -> None:
    (tmp_path / OWNER_FILE).write_text("{not json")
    assert read_owner(tmp_path) is None


def test_view_knows_whether_a_headless_compare_still_trains(tmp_path: Path) -> None:
    from optlab.tui.process import child_alive

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert child_alive(run_dir) is None  # no record: cannot tell
    claim(run_dir)
    assert child_alive(run_dir) is True
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"pid": int(ended.stdout), "host": socket.gethostname(), "started_at": "?"}
    (run_dir / OWNER_FILE).write_text(json.dumps(record))
    assert child_alive(run_dir) is False  # killed: the view says training is not running


def _claim_at_once(path: str, ready: Any, done: Any, answers: Any) -> None:
    from optlab.errors import RunDirError
    from optlab.runs.store import prepare_run_dir

    ready.wait()
    try:
        prepare_run_dir(Path(path))
        answers.put("claimed")
    except RunDirError as exc:
        answers.put(str(exc))
    done.wait()  # the winner stays alive until every loser has looked


@pytest.mark.parametrize("existing", [False, True])
def test_of_processes_claiming_one_run_directory_at_once_exactly_one_wins(tmp_path: Path, existing: bool) -> None:
    context = multiprocessing.get_context("fork")
    target = tmp_path / "runs" / "shared"
    if existing:
        target.mkdir(parents=True)  # an empty --out that exists
    n = 6
    ready, done, answers = context.Barrier(n), context.Barrier(n), context.Queue()
    procs = [context.Process(target=_claim_at_once, args=(str(target), ready, done, answers)) for _ in range(n)]
    for proc in procs:
        proc.start()
    got = [answers.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert got.count("claimed") == 1, got
    for refusal in (g for g in got if g != "claimed"):
        assert str(target) in refusal
        assert "still training into it" in refusal or "not empty" in refusal
    assert [p.name for p in target.iterdir()] == [OWNER_FILE]  # no probe or temporary file left


def test_a_dead_writers_record_is_taken_over_and_a_live_ones_is_refused(tmp_path: Path) -> None:
    from optlab.errors import RunDirError

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / OWNER_FILE).write_text(json.dumps({"pid": int(ended.stdout), "host": socket.gethostname()}))
    claim(tmp_path)
    owner = read_owner(tmp_path)
    assert owner is not None and owner.pid == os.getpid()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            (tmp_path / OWNER_FILE).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
            with pytest.raises(RunDirError, match=rf"still training into it \(pid {live.pid} "):
                claim(tmp_path)
        finally:
            live.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == [OWNER_FILE]
