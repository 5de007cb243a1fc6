"""`optlab tui` in a real terminal: tmux panes of 80x24 and 200x60 in 256 colours, to the final
table, `q`, exit code 0."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """tmux on a private socket, so the test never touches the user's sessions."""
    base = ["tmux", "-S", str(tmp_path / "tmux.sock")]
    yield base
    subprocess.run([*base, "kill-server"], capture_output=True, check=False)


def capture(tmux: list[str], escapes: bool = False) -> str:
    flags = ["-p", "-e"] if escapes else ["-p"]
    out = subprocess.run([*tmux, "capture-pane", *flags, "-t", "t"], capture_output=True, text=True, check=False)
    return out.stdout


@pytest.mark.parametrize(("width", "height"), [(80, 24), (200, 60)])
def test_tui_in_a_tmux_pane(tmux: list[str], tiny: Path, tmp_path: Path, width: int, height: int) -> None:
    run_dir = tmp_path / "run"
    exit_file = tmp_path / "exit-code"
    command = shlex.join([sys.executable, "-m", "optlab", "tui", str(tiny), "--out", str(run_dir), "-d", "cpu"])
    shell = f"cd {shlex.quote(str(tmp_path))} && {command}; echo $? > {shlex.quote(str(exit_file))}; sleep 5"
    # 256 colours, as over SSH: TERM says 256, nothing advertises truecolor.
    env = ["env", "-u", "COLORTERM", "-u", "TEXTUAL_COLOR_SYSTEM", "-u", "COLUMNS", "-u", "LINES", "TERM=xterm-256color"]
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), *env, "sh", "-c", shell],
        check=True,
    )
    deadline = time.monotonic() + 60
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(tmux)
        # The final table's header (the live table has no "accuracy" column) and the end status.
        if "accuracy" in screen and "finished · results in" in screen:
            break
        assert not exit_file.exists(), f"optlab tui exited early:\n{screen}"
        time.sleep(0.3)
    else:
        raise AssertionError(f"no final table after 60 s:\n{screen}")
    lines = screen.splitlines()
    assert len(lines) <= height and all(len(line) <= width for line in lines)
    for name in ("sgd", "adam", "rms-bs32"):
        assert name in screen
    assert "q quit" in screen.replace("  ", " ")  # the footer shows how to leave, even at 80 columns
    assert re.search(r"tiny │ \d\d:\d\d │ cpu", lines[0]), lines[0]  # the clock and device fit the header
    finished = [line for line in lines if re.search(r"(sgd|adam|rms-bs32) +finished ", line)]
    assert len(finished) == 3, screen  # run names and whole statuses in the final table
    if width >= 200:  # everything fits: every column of the final table and all three charts
        for text in ("roc auc", "test loss", "samples/s", "learning rate", "validation accuracy"):
            assert text in screen, screen
    colours = capture(tmux, escapes=True)
    assert "38;5;" in colours and "38;2;" not in colours  # 256-colour codes only, no truecolor
    subprocess.run([*tmux, "send-keys", "-t", "t", "q"], check=True)
    deadline = time.monotonic() + 15
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exit_file.exists(), f"optlab tui did not exit on q:\n{capture(tmux)}"
    assert exit_file.read_text().strip() == "0"
    assert "Traceback" not in capture(tmux)
    assert (run_dir / "results.json").is_file()


def test_training_survives_a_dropped_terminal(tmux: list[str], tmp_path: Path) -> None:
    """Killing the terminal (what a dropped SSH connection does: SIGHUP) leaves training running."""
    import os

    from tui.helpers import tiny_preset

    from optlab.tui.process import pid_path, write_control

    preset = tiny_preset(tmp_path, epochs=5000)
    run_dir = tmp_path / "run"
    events = run_dir / "events.jsonl"
    command = shlex.join([sys.executable, "-m", "optlab", "tui", str(preset), "--out", str(run_dir), "-d", "cpu"])
    subprocess.run([*tmux, "new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "sh", "-c", command], check=True)
    deadline = time.monotonic() + 60
    while not (events.is_file() and events.stat().st_size > 2000) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert events.is_file(), capture(tmux)
    pid = int(pid_path(run_dir).read_text())
    try:
        subprocess.run([*tmux, "kill-server"], check=True)  # the terminal is gone: SIGHUP
        size = events.stat().st_size
        deadline = time.monotonic() + 20
        while events.stat().st_size <= size and time.monotonic() < deadline:
            time.sleep(0.2)
        assert events.stat().st_size > size, "training stopped with its terminal"
        os.kill(pid, 0)  # still there
        write_control(run_dir, stop_all=True)  # what `optlab view` then `q`, `s` would send
        deadline = time.monotonic() + 30
        while '"experiment_ended"' not in events.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert '"experiment_ended"' in events.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
