"""Helpers of the TUI tests (imported as `tui.helpers`; tests/ is on the pytest path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY_RUNS = """
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }

[[runs]]
name = "adam"
optimizer = { name = "adam", lr = 1e-3 }
scheduler = { name = "cosine" }

[[runs]]
name = "rms-bs32"
optimizer = { name = "rmsprop", lr = 1e-3 }
batch_size = 32
"""


def tiny_preset(directory: Path, epochs: int = 2, name: str = "tiny") -> Path:
    """A three-run preset on digits that trains in about a second."""
    path = directory / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ndescription = "TUI test preset"\n\n'
        '[data]\ndataset = "digits"\n\n'
        '[model]\nname = "mlp"\nhidden = [16]\n\n'
        f"[train]\nepochs = {epochs}\nbatch_size = 64\nseed = 0\n" + TINY_RUNS,
        encoding="utf-8",
    )
    return path


async def wait_until(pilot: object, condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await pilot.pause(0.1)  # type: ignore[attr-defined]


async def wait_for_the_end(pilot: object, app: Any, screen: Any, what: str = "the final table") -> None:
    """Until the experiment screen shows its end tables and the training child has exited."""
    await wait_until(
        pilot, lambda: screen.showing_final and app.process is not None and app.process.poll() is not None, what=what
    )
