"""`optlab` ends without tearing the interpreter down once torch is loaded (cli/common.py:
`leave`), and still does what a normal exit does that matters: the exit code, other threads
finished, atexit hooks run, stdout and stderr flushed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
import torch
from optlab.cli.common import leave

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    (out / "thread").write_text("finished")
threading.Thread(target=late).start()
sys.stdout.write("no newline at the end")
sys.stderr.write("buffered")
leave(SystemExit({code}))
"""


@pytest.mark.parametrize(("code", "want"), [("3", 3), ("None", 0), ("'a message'", 1)])
def test_leave_keeps_the_exit_code_threads_hooks_and_output(tmp_path: Path, code: str, want: int) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(code=code), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == want, done.stderr
    assert done.stdout == "no newline at the end"
    assert done.stderr.startswith("buffered")
    if want == 1:
        assert done.stderr.endswith("a message\n")
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "finished"
