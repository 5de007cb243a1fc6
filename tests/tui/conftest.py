"""Shared setup of the TUI tests: one-thread training children, tiny presets, cleanup.

Every experiment here trains for real (a `python -m optlab compare` child), so the presets are
tiny: digits, an MLP with 16 hidden units, a couple of epochs.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui.helpers import tiny_preset


@pytest.fixture(autouse=True)
def _one_thread_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training children use one intra-op thread: with two threads on a 2-core machine that is
    also running the test process, torch's thread pool spins against the UI and a run can get
    tens of times slower."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setenv("OPTLAB_NO_BROWSER", "1")  # the report key must not open windows here


@pytest.fixture(autouse=True)
def _no_training_left_behind() -> Iterator[None]:
    """Training children outlive their TUI by design: a test that fails half-way (say, with
    training paused) would leave one running for good. Kill whatever this test started."""
    import psutil

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    for child in psutil.Process().children(recursive=True):
        if child.pid not in before:
            with contextlib.suppress(psutil.Error):
                child.kill()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_preset(tmp_path)


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Process-group ids of training children a test leaves running; killed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
