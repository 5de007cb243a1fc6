"""The owner record tells a live experiment from one whose process died."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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
