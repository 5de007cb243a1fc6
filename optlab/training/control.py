"""Pause and stop requests from a front end, honoured by the driver between chunks.

Apart from the driver (optlab.training.runner, which imports torch) so that the run store's
control file and the TUI, which must not import torch, share this one definition.
"""

from __future__ import annotations

import threading


class Control:
    """Thread-safe requests from a front end, honoured between chunks (never mid-step)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused = False
        self._stop: set[str] = set()
        self._stop_all = False

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def stop(self, run: str | None = None) -> None:
        with self._lock:
            if run is None:
                self._stop_all = True
            else:
                self._stop.add(run)

    def poll(self) -> None:
        """Hook for controls that live elsewhere (e.g. a file in the run directory)."""

    @property
    def paused(self) -> bool:
        return self._paused

    def should_stop(self, run: str) -> bool:
        with self._lock:
            return self._stop_all or run in self._stop
