"""The `processes` backend: one spawned worker process per device entry, each training its share
of the runs interleaved (`optlab.training.worker` is the worker's side).

Runs are dealt to the workers in order (run i to worker i mod n), then moved between workers
of the same device by their measured speed (`optlab.training.balance`: the driver decides, the
run's worker hands its exact state over between two requests; compare, resume and each wave of
a study, `optlab.tuning.executors.KeptMovable`). With fusion (`fuse`), a
fusion group (or a part of one, when it is larger than a worker's share) is the unit dealt:
all its members go to one worker, which trains them as one stack (`FusedHost`). A worker
that dies is replaced by a new one on the same device the next time one of its runs starts
again, which the driver decides (`Runner._restart`); a run restarted so trains unfused.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import re
import time
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from optlab.errors import OptlabError
from optlab.training.executor import Reply
from optlab.training.fused.plan import plan, split
from optlab.training.threads import DEFAULT_THREADS
from optlab.training.worker import receive, serve
from optlab.training.worker_link import Worker, send_limit

if TYPE_CHECKING:

    from optlab.spec import ResolvedRun
    from optlab.training.checkpoint_policy import CheckpointPolicy
    from optlab.training.executor import State

DEVICE_ITEM = re.compile(r"cpu|cuda(:\d+)?")
ANSWER_TIMEOUT_S = 10.0  # end_now: how long a busy worker may take to finish its interval


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_devices() -> list[str]:
    """Every visible GPU, else one CPU worker per core."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * max(1, cores())


def parse_devices(text: str) -> list[str]:
    """`--devices`: a comma-separated list of cpu, cuda (every visible GPU) and cuda:N, each a
    worker. Raises OptlabError naming the entry that is malformed or absent."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not DEVICE_ITEM.fullmatch(item) for item in items):
        bad = next((item for item in items if not DEVICE_ITEM.fullmatch(item)), text)
        raise OptlabError(
            f"--devices {text!r}: {bad!r} is not a device; expected a comma-separated list of "
            "cpu, cuda (every visible GPU) and cuda:N, e.g. cuda:0,cuda:1 or cpu,cpu"
        )
    devices: list[str] = []
    if any(item.startswith("cuda") for item in items):
        import torch

        if not torch.cuda.is_available():
            raise OptlabError(
                f"--devices {text}: CUDA is not available here (torch {torch.__version__}); "
                "use --devices cpu,cpu for CPU workers"
            )
        count = torch.cuda.device_count()
    for item in items:
        if item == "cuda":
            devices += [f"cuda:{i}" for i in range(count)]
            continue
        if item.startswith("cuda:") and int(item[5:]) >= count:
            raise OptlabError(f"--devices {text}: {item} does not exist, only {count} CUDA device(s) present")
        devices.append(item)
    return devices


def visible_devices(device: str) -> str:
    """CUDA_VISIBLE_DEVICES for a worker on `device`: none for a CPU worker; for cuda:N the N-th
    GPU this process sees (which, under a CUDA_VISIBLE_DEVICES of our own, is that list's N-th)."""
    if not device.startswith("cuda"):
        return ""
    index = int(device.partition(":")[2] or 0)
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if seen:
        return seen.split(",")[index].strip()
    return str(index)


def _start_worker(device: str, threads: int, plugins: list[str], name: str, data: Any = None) -> Worker:
    context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA
    ours, theirs = context.Pipe()
    local = "cuda" if device.startswith("cuda") else "cpu"
    process = context.Process(
        target=serve,
        args=(theirs, visible_devices(device), local, device, threads, plugins, data),
        name=name,
        daemon=True,
    )
    process.start()
    theirs.close()
    return Worker(device, process, ours, settings=(threads, tuple(plugins)), limit=send_limit(ours))


# Workers started by `prespawn` before the driver has imported torch, taken by the executor.
_ready: list[Worker] = []


def prespawn(devices: list[str], threads: int | None, plugins: list[str], data: Any = None) -> None:
    """Start the workers now, while the driver still loads (its torch import, the dataset,
    the run directory): a worker's own start (torch, the training modules, `data` loaded when
    given: a DataConfig) then overlaps the driver's instead of following it (benchmarks/
    driver_cost.py (i)). A worker no executor takes is told to exit when this process does."""
    if not _ready:
        atexit.register(_close_unused)  # runs before multiprocessing's own exit hook joins them
    for i, device in enumerate(devices):
        _ready.append(_start_worker(device, threads or DEFAULT_THREADS, plugins, f"optlab-worker-ahead{i}", data))


def _take_ready(device: str, threads: int, plugins: list[str]) -> Worker | None:
    for worker in _ready:
        if worker.device == device and worker.settings == (threads, tuple(plugins)) and worker.process.is_alive():
            _ready.remove(worker)
            return worker
    return None


def _close_unused() -> None:
    while _ready:
        worker = _ready.pop()
        with contextlib.suppress(OSError):
            worker.post(("exit",))
            worker.close()


class ProcessExecutor:
    backend = "processes"
    can_lose_workers = True
    capacity: int | None = None  # every run has a worker to train on from the start
    # Two requests in flight per worker while intervals are short (see optlab.training.pipelining):
    # the worker trains the next interval while the driver reads the last.
    depth = 2

    def __init__(self, devices: list[str], threads: int | None = None, plugins: list[str] | None = None,
                 fuse: list[ResolvedRun] | None = None) -> None:
        """`fuse`: the runs to come, to be trained fused where they can (`--fuse auto`)."""
        if not devices:
            raise ValueError("the processes backend needs at least one device")
        self.devices = devices
        self.device_label = ",".join(devices)
        self.threads = threads or DEFAULT_THREADS  # a run's floats depend on it: optlab.training.threads
        self.plugins = list(plugins or [])
        self._workers: dict[str, Worker] = {}
        self._slot_of: dict[str, str] = {}
        self._ended: dict[str, dict[str, Any]] = {}  # RunEnded seen while draining for end_now
        # Per run to come: its (group, size), or why it trains on its own; None: not fusing.
        self._fusion: dict[str, tuple[str, int] | str] | None = None
        # Runs started from a state (resumed, restarted, moved): a worker trains these alone
        # whatever the plan says (`FusedHost.start`), so each is a unit of its own.
        self._units: dict[str, str] = {}  # run -> its unit, as its worker's start reply says
        self._fusing = fuse is not None
        if fuse is not None:
            self.replan(fuse)

    def replan(self, specs: list[ResolvedRun]) -> None:
        """The next runs' fusion groups, each dealt to one worker (whole, or in parts where it
        is larger than a worker's share: `split`). While groups train, a run is asked for one
        interval at a time, as the local fused executor does: two requests in flight would train
        a group ahead of a member whose events wait, and that member's epoch-end checkpoint
        would be taken after them. Without groups, runs keep the pipeline.
        An executor made without `fuse` never fuses (a study's later waves included)."""
        if not self._fusing:
            return
        fusion = plan(specs)
        self.depth = 1 if fusion.groups else type(self).depth
        # Each worker gets about its share of the wave's runs, a group larger than that cut
        # into parts (`split`): no worker idles while another trains a big stack.
        parts, workers = split(fusion, [spec.name for spec in specs], len(self.devices))
        self._slot_of.update({name: f"w{worker}" for name, worker in workers.items()})
        fused: dict[str, tuple[str, int] | str] = {**parts.reasons, **parts.groups}
        self._fusion = {**(self._fusion or {}), **fused}

    # ------------------------------------------------------------------ workers

    def _spawn(self, slot: str) -> Worker:
        device = self.devices[int(slot[1:])]
        ready = None if slot in self._workers else _take_ready(device, self.threads, self.plugins)
        worker = ready or _start_worker(device, self.threads, self.plugins, f"optlab-worker-{slot}")
        self._workers[slot] = worker
        return worker

    def _worker(self, slot: str) -> Worker:
        worker = self._workers.get(slot)
        return worker if worker is not None and not worker.dead else self._spawn(slot)

    def slot(self, run: str) -> str:
        if run not in self._slot_of:
            self._slot_of[run] = f"w{len(self._slot_of) % len(self.devices)}"
        return self._slot_of[run]

    def peers(self, slot: str) -> list[str]:
        """Only workers on the same device entry: a run's placement records that device, and
        two GPUs need not compute the same numbers."""
        device = self.devices[int(slot[1:])]
        return [f"w{i}" for i, d in enumerate(self.devices) if d == device and f"w{i}" != slot]

    def movable(self, run: str) -> bool:
        return self.unit(run) == run

    def unit(self, run: str) -> str:
        """A member of a fusion part trains in it, one stack with the others: their unit is the
        part (its id is unique among the parts of a wave; prefixed, it is no run's name). What
        its worker said at its start decides (a planned member may train alone: started from a
        state, or `FusedHost`'s checks once built); before that, the plan."""
        known = self._units.get(run)
        if known is not None:
            return known
        fused = None if self._fusion is None else self._fusion.get(run)
        return f"fused {fused[0]}" if isinstance(fused, tuple) else run

    def hand_over(self, run: str) -> None:
        self._send(run, ("hand_over", run))

    def move(self, run: str, slot: str) -> None:
        worker = self._workers.get(self.slot(run))
        if worker is not None:
            worker.runs.discard(run)  # its death no longer concerns the run
        self._slot_of[run] = slot

    def _send(self, run: str, request: tuple[Any, ...], aside: bool = False) -> None:
        worker = self._worker(self.slot(run))
        worker.runs.add(run)
        worker.waiting.append(run)
        worker.post(request, aside)

    # ------------------------------------------------------------------ requests

    def start(self, spec: ResolvedRun, state: State | None) -> None:
        fused = None if self._fusion is None else self._fusion.get(spec.name, "it was not planned with the others")
        self._units.pop(spec.name, None)  # known again from its start's reply
        self._send(spec.name, ("start", spec, state, fused), aside=state is not None)

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> None:
        self._send(run, ("advance", run, checkpoints, budget_s, past_epoch_ends))

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> None:
        self._send(run, ("stop", run, reason, evaluate_test, checkpoint))

    def release(self, run: str) -> None:
        worker = self._workers.get(self.slot(run))
        if worker is None or worker.dead:
            return
        worker.runs.discard(run)
        worker.post(("release", run))

    def collect(self, timeout: float) -> list[Reply]:
        live = [w for w in self._workers.values() if not w.dead]
        if not live:
            time.sleep(timeout)
            return []
        ready = set(wait([x for w in live for x in (w.conn, w.process.sentinel)], timeout))
        replies: list[Reply] = []
        for worker in live:
            if worker.conn in ready or worker.process.sentinel in ready:
                replies += self._read(worker)
        return replies

    def _read(self, worker: Worker) -> list[Reply]:
        replies: list[Reply] = []
        try:
            while worker.conn.poll():
                reply = receive(worker.conn)
                replies.append(reply)
                worker.waiting.popleft()
                if reply.kind == "started" and reply.events and reply.events[0].get("type") == "run_started":
                    fused = reply.events[0].get("placement", {}).get("fused")
                    self._units[reply.run] = f"fused {fused['group']}" if fused else reply.run
                if reply.kind == "handed" and reply.checkpoint is not None:
                    # It trains on another worker from now on (the driver starts it there from
                    # this state): should this one turn out dead below, that is not its loss.
                    worker.runs.discard(reply.run)
        except (EOFError, OSError):
            pass
        if worker.process.is_alive():
            return replies
        worker.process.join()
        worker.dead = True
        worker.close()
        why = f"(worker pid {worker.process.pid} on {worker.device} exited with code {worker.process.exitcode})"
        replies += [Reply("lost", run, detail=why) for run in sorted(worker.runs)]
        worker.runs.clear()
        worker.waiting.clear()
        return replies

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        if run in self._ended:
            return self._ended.pop(run)
        worker = self._workers.get(self.slot(run))
        if worker is None or worker.dead or run not in worker.runs:
            return None
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        self._send(run, ("stop", run, reason, False))
        while worker.waiting and time.monotonic() < deadline and not worker.dead:
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                break
            for reply in self._read(worker):
                for event in reply.events:
                    if event.get("type") == "run_ended":
                        self._ended[reply.run] = event
        return self._ended.pop(run, None)

    def close(self) -> None:
        for worker in self._workers.values():
            if not worker.dead:
                worker.post(("exit",))
        for worker in self._workers.values():
            worker.process.join(timeout=5.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5.0)
            with contextlib.suppress(OSError):
                worker.close()
