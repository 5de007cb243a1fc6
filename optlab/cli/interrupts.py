"""How `optlab` answers Ctrl-C and SIGTERM outside training (the driver handles them during
training: `experiment._interrupts_wind_down`): the message and exit code, and a second signal
during the cleanup that leaves at once (files are written atomically)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

from optlab.errors import Terminated


def exit_130(*_: object) -> None:
    os._exit(130)


def exit_143(*_: object) -> None:
    os._exit(Terminated.exit_code)


def terminate(*_: object) -> None:
    """SIGTERM (a scheduler's preemption) stops training as Ctrl-C does; a second one, during
    the cleanup, leaves at once (files are written atomically)."""
    signal.signal(signal.SIGTERM, exit_143)
    raise Terminated()


def stop_on_sigterm() -> None:
    with contextlib.suppress(ValueError):  # not the main thread (a test's runner): nothing to install
        signal.signal(signal.SIGTERM, terminate)


def interrupted_exit(exc: KeyboardInterrupt) -> int:
    """The message and exit code of Ctrl-C or SIGTERM outside training."""
    leave_on_next_interrupt()
    sys.stderr.write("\noptlab: terminated (SIGTERM)\n" if isinstance(exc, Terminated) else "\noptlab: interrupted\n")
    return Terminated.exit_code if isinstance(exc, Terminated) else 130


def leave_on_next_interrupt() -> None:
    """After a first Ctrl-C the process is on its way out: another one leaves at once, with 130,
    however soon it comes (files are written atomically, so nothing is left half-made)."""
    with contextlib.suppress(ValueError):  # not the main thread: nothing to install
        signal.signal(signal.SIGINT, exit_130)


@contextlib.contextmanager
def second_interrupt_exits() -> Iterator[None]:
    """During cleanup after Ctrl-C, another Ctrl-C leaves at once (files are written atomically)."""
    try:
        previous = signal.signal(signal.SIGINT, exit_130)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
