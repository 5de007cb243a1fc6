"""The run directory: the single record of an experiment.

    DIR/preset.toml          the resolved preset that produced it
    DIR/overrides.json       the --set and --seeds it was made with, when given (runs/command_line.py)
    DIR/events.jsonl         append-only events, one JSON object per line
    DIR/owner.json           the process training into DIR, while it does (runs/owner.py)
    DIR/results.json         a view of events.jsonl: rewritten atomically at the end, and at most
                             every RESULTS_EVERY_S while runs train (never per epoch)
    DIR/report.md, metrics.csv
    DIR/runs/NAME/predictions.npz, checkpoint-last.pt, checkpoint-best.pt, log.txt

Every file other than events.jsonl is written to a temporary file, fsynced and renamed,
so a crash never leaves one half-written (runs/files.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from optlab.errors import RunDirError, StorageError
from optlab.preset.names import preset_name_error, safe_name
from optlab.runs.files import atomic_write_bytes, atomic_write_text
from optlab.runs.owner import OWNER_FILE, claim, release
from optlab.runs.results import ResultsBuilder
from optlab.training.events import (
    EpochEnded,
    Event,
    ExperimentEnded,
    RunEnded,
    event_from_dict,
)

# Live readers (the TUI, `optlab view`) see what reached the OS: hand lines over often (a
# write call), make them durable (fsync, which costs a disk round trip) less often.
FLUSH_EVERY_S = 0.25
FSYNC_EVERY_S = 2.0
# results.json holds every run's whole history: rewriting it at every epoch end made the driver's
# cost grow with the square of the epochs (30 of 56 s at 100 epochs). While runs train it is
# rewritten at most this often, and never more often than keeps its writing under
# 1/RESULTS_COST_FACTOR of the time (a huge study's document takes long to write).
RESULTS_EVERY_S = 2.0
RESULTS_COST_FACTOR = 100.0


# The code a checkpoint's numbers depend on: what trains, what feeds it, what it trains.
FINGERPRINTED = ("training", "data", "models")


@functools.cache
def code_fingerprint() -> str:
    """A short hash of optlab's core source (the .py files under FINGERPRINTED), computed once
    per process when a checkpoint is written or resumed; never on import, so --help stays fast."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for sub in FINGERPRINTED:
        for path in sorted((package / sub).rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def write_results_json(root: Path, doc: dict[str, Any]) -> None:
    """results.json, atomically, with undefined numbers as null (JSON has no NaN)."""
    atomic_write_text(root / "results.json", results_text(_finite(doc)))


def results_text(doc: dict[str, Any]) -> str:
    """The document with a line per top-level field and per run. Python's JSON encoder runs in
    C only without `indent`: a fully indented document of 8 runs x 300 epochs took ten times
    as long to write, on the driver's own time."""

    def dump(value: Any) -> str:
        return json.dumps(value, allow_nan=False, default=str)

    fields = []
    for key, value in doc.items():
        if key == "runs" and isinstance(value, list) and value:
            runs = ",\n".join(f"    {dump(run)}" for run in value)
            fields.append(f'  "runs": [\n{runs}\n  ]')
        else:
            fields.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def default_run_dir(preset_name: str, base: Path = Path("runs")) -> Path:
    """A new directory under `base` named after the preset. The name is made safe here too:
    callers may pass a name read before validation, and it must never lead out of `base`."""
    if preset_name_error(preset_name):
        preset_name = safe_name(preset_name, "preset")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{stamp}-{preset_name}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{preset_name}-{n}"
    return path


def prepare_run_dir(path: Path, allow_existing: bool = False) -> Path:
    """Create the directory, prove it is writable and claim it for this process (owner.json),
    before any training starts. The claim is the one atomic step: of two commands given the
    same new --out at the same moment, one gets the directory and the other a RunDirError."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; --out must name a new or empty directory")
    try:
        if path.exists() and not allow_existing and any(path.iterdir()):
            raise RunDirError(f"{path}: output directory exists and is not empty; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".optlab-write-test-{os.getpid()}"  # racing commands must not share it
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
        claim(path)
    except OSError as exc:
        raise RunDirError(f"{path}: output directory is not writable ({exc.strerror or exc})") from None
    if not allow_existing and any(p.name != OWNER_FILE and not p.name.startswith(".") for p in path.iterdir()):
        # Another writer came between our look and our claim and is gone already: not ours.
        release(path)
        raise RunDirError(f"{path}: output directory exists and is not empty; choose another --out")
    return path


class RunStore:
    """A sink that writes the run directory as events arrive."""

    def __init__(self, root: Path, preset_toml: str | None = None, resume: bool = False) -> None:
        self.root = root
        self.builder = ResultsBuilder()
        if resume:
            for event in read_events(root).events:
                self.builder.handle(event)
        with self._writing():
            if preset_toml is not None:
                atomic_write_text(root / "preset.toml", preset_toml)
            events = root / "events.jsonl"
            # A crash (or a full disk) can leave a partial last line; end it so that lines
            # appended now stay whole (the reader skips the broken one and says so).
            if resume and events.is_file() and events.stat().st_size:
                with open(events, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    partial = fh.read(1) != b"\n"
                if partial:
                    with open(events, "ab") as fh:
                        fh.write(b"\n")
            self._events = open(events, "a", encoding="utf-8")  # noqa: SIM115 (lives with the sink)
            claim(root)
        self._last_flush = self._last_fsync = time.monotonic()
        self._results_due = 0.0  # monotonic time from which a live rewrite of results.json is due

    @contextlib.contextmanager
    def _writing(self) -> Any:
        """A failed write (disk full, permissions) becomes one StorageError naming the directory."""
        try:
            yield
        except OSError as exc:
            raise StorageError(f"{self.root}: cannot write the run directory ({exc.strerror or exc})") from None

    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / run

    def handle(self, event: Event) -> None:
        self.builder.handle(event)
        with self._writing():
            self._write_event(event)

    def _write_event(self, event: Event) -> None:
        self._events.write(json.dumps(event.to_dict(), allow_nan=True, default=str) + "\n")
        now = time.monotonic()
        milestone = isinstance(event, EpochEnded | RunEnded | ExperimentEnded)
        # A flushed line survives the process (kill -9 included); fsync guards against the
        # machine going down, at a disk round trip each: at run ends and every FSYNC_EVERY_S.
        final = isinstance(event, RunEnded | ExperimentEnded)
        if milestone or now - self._last_flush > FLUSH_EVERY_S:
            self._events.flush()
            self._last_flush = now
            if final or now - self._last_fsync > FSYNC_EVERY_S:
                os.fsync(self._events.fileno())
                self._last_fsync = now
        # results.json is a view of this log (report and resume rebuild it from the events):
        # rewritten when due, and always at the experiment's end. Not at every run end: runs
        # paced together end together, and each rewrite holds every run's whole history.
        if isinstance(event, ExperimentEnded) or (milestone and now >= self._results_due):
            self.write_results()
        if isinstance(event, RunEnded) and event.detail:
            atomic_write_text(self.run_dir(event.run) / "log.txt", event.detail)

    def write_results(self) -> None:
        started = time.monotonic()
        with self._writing():
            write_results_json(self.root, self.builder.doc)
        took = time.monotonic() - started
        self._results_due = started + max(RESULTS_EVERY_S, RESULTS_COST_FACTOR * took)

    def predictions(self, run: str, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        # numpy's stub reads **arrays as possibly its allow_pickle flag; every value is an array.
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        with self._writing():
            atomic_write_bytes(self.run_dir(run) / "predictions.npz", buf.getvalue())

    def checkpoint(self, run: str, state: dict[str, Any], best: bool) -> None:
        """checkpoint-last.pt, and checkpoint-best.pt too when `best` (the state is the best
        epoch's)."""
        data = _serialise(state)
        with self._writing():
            atomic_write_bytes(self.run_dir(run) / "checkpoint-last.pt", data)
            if best:
                atomic_write_bytes(self.run_dir(run) / "checkpoint-best.pt", data)

    def best_checkpoint(self, run: str, state: dict[str, Any]) -> None:
        """checkpoint-best.pt alone: a best epoch's state, sent with a later checkpoint."""
        data = _serialise(state)
        with self._writing():
            atomic_write_bytes(self.run_dir(run) / "checkpoint-best.pt", data)

    def close(self) -> None:
        with self._writing():
            if not self._events.closed:
                try:
                    self._events.flush()
                finally:
                    self._events.close()
        self.write_results()
        release(self.root)

    @property
    def results(self) -> dict[str, Any]:
        return self.builder.doc


def _serialise(state: dict[str, Any]) -> bytes:
    import torch

    buf = io.BytesIO()
    # Resume compares it: the same version string can hide edited training code.
    torch.save({**state, "code_fingerprint": code_fingerprint()}, buf)
    return buf.getvalue()


def _finite(value: Any) -> Any:
    """JSON has no NaN: undefined numbers (a diverged loss) are written as null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class EventLog:
    def __init__(self, events: list[Event], valid_lines: int, bad_lines: list[int]) -> None:
        self.events = events
        self.valid_lines = valid_lines
        self.bad_lines = bad_lines


def parse_event_line(line: bytes) -> Event | None:
    """One line of events.jsonl as an event, or None when it is corrupt (a crash mid-write,
    an event of an unknown type)."""
    try:
        return event_from_dict(json.loads(line.decode("utf-8", errors="replace")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class EventTail:
    """The tolerant reader of events.jsonl, incremental: it keeps a byte offset and holds a
    partial last line back until the writer finishes it (or `finish` says none will)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0  # complete lines read so far
        self.bad_lines: list[int] = []  # their numbers (1-based) that did not parse
        self._partial = b""

    def read(self, max_bytes: int = 4 << 20) -> list[Event]:
        """Events completed since the last call (none if the file does not exist yet)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self.offset:  # truncated or replaced: start again
            self.offset, self.lines, self.bad_lines, self._partial = 0, 0, [], b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(max_bytes)
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        return self._parse(lines)

    def read_all(self) -> list[Event]:
        events: list[Event] = []
        while batch := self.read():
            events += batch
        return events

    def finish(self) -> list[Event]:
        """The held-back last line, once the writer is known to be done with it."""
        partial, self._partial = self._partial, b""
        return self._parse([partial])

    def _parse(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        for line in lines:
            self.lines += 1
            if not line.strip():
                continue
            event = parse_event_line(line)
            if event is None:
                self.bad_lines.append(self.lines)
            else:
                events.append(event)
        return events


def read_events(root: Path) -> EventLog:
    """Read events.jsonl, tolerating a truncated or corrupt line (a crash mid-write)."""
    path = root / "events.jsonl"
    if not path.is_file():
        raise RunDirError(f"{root}: not a run directory (no events.jsonl)")
    tail = EventTail(path)
    events = tail.read_all() + tail.finish()
    return EventLog(events, len(events), tail.bad_lines)


def load_results(root: Path) -> dict[str, Any]:
    """results.json as optlab wrote it; any other JSON (a file someone put there) is refused
    with what was expected, so no reader meets a shape it cannot handle."""
    path = root / "results.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{root}: not a run directory (no results.json)") from None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: cannot read ({exc})") from None
    problem = results_shape_error(doc)
    if problem:
        raise RunDirError(f"{path}: not a results document written by optlab ({problem})")
    return doc


def results_shape_error(doc: Any) -> str | None:
    """What makes `doc` other than an optlab results document, or None."""
    if not isinstance(doc, dict):
        return f"expected a JSON object, found {type(doc).__name__}"
    if not isinstance(doc.get("results_version"), int):
        return "no results_version"
    for key, kind in (("runs", list), ("preset", dict), ("dataset", dict)):
        if not isinstance(doc.get(key), kind):
            return f"'{key}' is missing or not a {'list' if kind is list else 'table'}"
    for i, run in enumerate(doc["runs"]):
        if not isinstance(run, dict) or not isinstance(run.get("name"), str):
            return f"runs[{i}] is not a run with a name"
        for key, kind in (("history", list), ("notes", list), ("config", dict)):
            if key in run and not isinstance(run[key], kind):
                return f"runs[{i}].{key} is not a {'list' if kind is list else 'table'}"
        if run.get("test") is not None and not isinstance(run["test"], dict):
            return f"runs[{i}].test is not a table"
    return None
