"""Errors meant for the user: one clear message, no traceback, exit code 2."""

from __future__ import annotations


class OptlabError(Exception):
    """Bad input or an unmet precondition. The CLI prints `str(error)` and exits with `exit_code`."""

    exit_code = 2


class PresetError(OptlabError):
    """A preset (file, name, or --set override) that cannot be used as given."""


class DatasetUnavailable(OptlabError):
    """Dataset files are missing and cannot be downloaded."""


class RunDirError(OptlabError):
    """A run directory that cannot be read, written or resumed."""


class StorageError(OptlabError):
    """The run directory could not be written mid-run (disk full, permissions changed).

    Not bad input, so exit code 1; the runs stop and what was already written stays intact."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster scheduler's preemption, `kill`), raised where the signal lands by the
    commands that train, so that it stops training as Ctrl-C does: every run ends `interrupted`
    with its checkpoint kept, the run directory closed and resumable. Exit code 143 (128 + 15)."""

    exit_code = 143


class ClusterLost(KeyboardInterrupt):
    """A cluster lost a process the driver cannot train without (with Ray: the driver's own
    node, or its GCS). A KeyboardInterrupt, as Terminated is, because it takes the same path:
    every run stops where its last checkpoint is, the run directory is closed interrupted and
    resumable. `str()` says what was lost. Exit code 1: neither bad input nor the user's doing."""

    exit_code = 1
