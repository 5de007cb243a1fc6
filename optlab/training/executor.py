"""Executors: where runs train. The driver (`optlab.training.runner.Runner`) asks; an executor answers.

Every backend answers the same requests with plain data, so the driver never holds a trainer:

- `start(spec, state)`: build the run (resuming `state` if given) -> its `RunStarted`, or the
  `RunEnded` of a run that cannot be built;
- `advance(run, checkpoints, budget_s, past_epoch_ends)`: train one reporting interval or more
  -> its events, the checkpoint state (CPU tensors) when an epoch ended and the policy says one
  is due, the predictions (numpy) when the run ended;
- `stop(run, reason, evaluate_test)`: end the run now -> its `RunEnded` (and predictions).

Requests are submitted and their replies collected later, so a backend with several workers
trains them at the same time while the driver stays the only writer of the run directory.
A reply of kind `lost` says a run's worker died: the driver decides what happens next.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from optlab.training.events import EpochEnded, Event, RunEnded
from optlab.training.threads import numerical_environment

if TYPE_CHECKING:
    from optlab.data.datasets import DatasetBundle
    from optlab.spec import ResolvedRun
    from optlab.training.checkpoint_policy import CheckpointPolicy
    from optlab.training.trainer import Trainer


@dataclass
class _Saved:
    """Where a run's last checkpoint was taken, and its best state not yet sent."""

    elapsed_s: float
    epoch: int
    best: State | None = None


@dataclass(frozen=True)
class PackedState:
    """A checkpoint pickled once, in the worker that took it. The driver keeps it as bytes and
    unpacks it only when a sink writes it or a restart sends it back: unpickling every epoch's
    state in the driver took CPU from the workers beside it on a small machine."""

    data: bytes

    @classmethod
    def pack(cls, state: dict[str, Any]) -> PackedState:
        return cls(pickle.dumps(cpu_state(state), protocol=pickle.HIGHEST_PROTOCOL))

    def unpack(self) -> dict[str, Any]:
        return pickle.loads(self.data)  # our own worker's bytes, never a file's


State = dict[str, Any] | PackedState  # a checkpoint as a sink writes it, or as it crossed a process


def unpack_state(state: State | None) -> dict[str, Any] | None:
    return state.unpack() if isinstance(state, PackedState) else state


@dataclass
class Reply:
    """One answer of an executor: `kind` is started | advanced | stopped | lost | handed (a
    run's state for another worker: `TrainerHost.hand_over`)."""

    kind: str
    run: str
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: State | None = None
    predictions: dict[str, Any] | None = None
    detail: str = ""  # lost: why (e.g. the worker's exit code)
    # The state at the run's best epoch since its last checkpoint, when that epoch's own state
    # was not a checkpoint (the policy did not ask for one then): checkpoint-best.pt.
    best: State | None = None


class Executor(Protocol):
    backend: str
    device_label: str  # what ExperimentStarted records as the experiment's device
    can_lose_workers: bool  # the driver then keeps every run's last checkpoint to restart it
    capacity: int | None  # how many runs can train at once (None: all of them)

    def slot(self, run: str) -> str:
        """The worker a run trains on: requests to one slot are answered one after another."""
        ...

    def start(self, spec: ResolvedRun, state: State | None) -> None: ...

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> None:
        """Train one reporting interval, and more for up to `budget_s` seconds (past epoch ends
        only when `past_epoch_ends`: the driver decides nothing at them), in one request; with
        the state at its last epoch end when `checkpoints` says one is due (None: no
        checkpoints; a request ends at an epoch end where a checkpoint is taken)."""
        ...

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> None:
        """End the run now; `checkpoint`: with its state first, where it resumes exactly."""
        ...

    def collect(self, timeout: float) -> list[Reply]:
        """Replies that arrived, waiting up to `timeout` seconds for the first one."""
        ...

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        """End a run at once without test metrics (Ctrl-C, a failed record); its RunEnded, or
        None when its worker cannot answer in time."""
        ...

    def release(self, run: str) -> None:
        """The run has ended: free what its trainer holds."""
        ...

    def close(self) -> None: ...


def placement(backend: str, device: str, gpu_index: int | None = None) -> dict[str, Any]:
    """Where a run trains, as recorded in its RunStarted and results.json."""
    import torch

    gpu = None
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(gpu_index if gpu_index is not None else torch.device(device))
    return {"backend": backend, "host": socket.gethostname(), "device": device, "gpu": gpu, "pid": os.getpid()}


def cpu_state(value: Any) -> Any:
    """A checkpoint with every tensor on the CPU: a driver without a GPU must read it."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: cpu_state(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(cpu_state(v) for v in value)
    return value


def copied(value: Any) -> Any:
    """A checkpoint whose tensors are copies (a state held while training goes on)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(copied(v) for v in value)
    return value


class TrainerHost:
    """The trainers of one process and the requests they answer; the local executor and every
    worker process use it, so all backends compute the same things the same way."""

    def __init__(self, data: DatasetBundle, device: str, where: dict[str, Any], copy_state: bool = False) -> None:
        self.data = data
        self.device = device
        self.where = where
        # A state for another process goes packed (CPU tensors, pickled now: it cannot alias the
        # live tensors that training goes on updating); one for this process is written at once.
        self.copy_state = copy_state
        self.trainers: dict[str, Trainer] = {}
        self.saved: dict[str, _Saved] = {}

    def start(self, spec: ResolvedRun, state: State | None) -> Reply:
        from optlab.training.trainer import Trainer

        try:
            trainer = Trainer(spec, self.data, self.device)
            saved = unpack_state(state)
            if saved is not None:
                trainer.load_state_dict(saved)
        except (Exception, SystemExit) as exc:  # a run that cannot be built or resumed (or exits) fails alone
            ended = RunEnded(run=spec.name, status="failed", reason=f"{type(exc).__name__}: {exc}",
                             detail=traceback.format_exc())
            return Reply("started", spec.name, [ended.to_dict()])
        self.trainers[spec.name] = trainer
        held = saved.get("handed_over") if saved is not None else None
        if held is None:
            self.saved[spec.name] = _Saved(trainer.elapsed_s, trainer.epoch)
        else:  # moved here: its checkpoints fall due where they would have on its old worker
            best = held["best"]
            best = PackedState.pack(best) if best is not None and self.copy_state else best
            self.saved[spec.name] = _Saved(held["elapsed_s"], held["epoch"], best)
        started = trainer.started_event()
        # Where it trains, and what else decides its floats (threads, torch version).
        started.placement = {**self.where, **numerical_environment()}
        return Reply("started", spec.name, [started.to_dict()])

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> Reply:
        """One reporting interval, and more until `budget_s` seconds have gone, in one reply;
        never past the run's end, nor past an epoch's end unless `past_epoch_ends`, and never
        past the epoch end where a checkpoint is taken (when due), so a reply holds one state."""
        trainer = self.trainers[run]
        events: list[Event] = []
        reply = Reply("advanced", run)
        t0 = time.perf_counter()
        while trainer.ended is None:
            try:
                new = trainer.advance()
            except (Exception, SystemExit) as exc:  # a plugin's sys.exit() mid-run fails its run, not optlab
                new = [trainer.fail(exc, traceback.format_exc())]
            events += new
            ended_epoch = next((e for e in new if isinstance(e, EpochEnded)), None)
            if ended_epoch is not None:
                if checkpoints is not None:
                    self._checkpoint(trainer, checkpoints, ended_epoch, reply)
                if not past_epoch_ends or reply.checkpoint is not None:
                    break
            if time.perf_counter() - t0 >= budget_s:
                break
        reply.events = [e.to_dict() for e in events]
        reply.predictions = self._predictions(trainer)
        return reply

    def _checkpoint(self, trainer: Trainer, policy: CheckpointPolicy, epoch: EpochEnded, reply: Reply) -> None:
        """The state at this epoch end when the policy says one is due or the run has ended;
        otherwise, at an improved epoch, a copy kept back as the best state to send with the
        next checkpoint (checkpoint-best.pt stays the best epoch's state)."""
        saved = self.saved[trainer.spec.name]
        due = policy.due(trainer.elapsed_s - saved.elapsed_s, trainer.epoch - saved.epoch)
        if due or trainer.ended is not None:
            reply.checkpoint = self._state(trainer)
            if not epoch.improved:
                reply.best = saved.best
            self.saved[trainer.spec.name] = _Saved(trainer.elapsed_s, trainer.epoch)
        elif epoch.improved:
            # A copy: the live tensors go on training.
            state = self._trainer_state(trainer)
            saved.best = PackedState.pack(state) if self.copy_state else copied(state)

    def _state(self, trainer: Trainer) -> State:
        state = self._trainer_state(trainer)
        return PackedState.pack(state) if self.copy_state else state

    def _trainer_state(self, trainer: Trainer) -> dict[str, Any]:
        return trainer.state_dict()

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> Reply:
        """End the run now; `checkpoint`: with the state it stopped in (taken before its end's
        test evaluation restores the best weights), where it can resume exactly from there."""
        trainer = self.trainers[run]
        if trainer.ended is not None:
            return Reply("stopped", run)
        state = self._state(trainer) if checkpoint and trainer.can_checkpoint_now else None
        best = self.saved[run].best if state is not None else None
        ended = trainer.end("stopped", reason, evaluate_test=evaluate_test)
        return Reply("stopped", run, [ended.to_dict()], state, self._predictions(trainer), best=best)

    def hand_over(self, run: str) -> Reply:
        """Let the run go to another worker (`optlab.training.balance`): its exact state, with
        what this host holds for its checkpoints (when the last was taken, the best state not
        sent yet), and the trainer freed. No state when it cannot be taken now (a schedule-free
        run mid-epoch, see `Trainer.can_checkpoint_now`): the run stays."""
        trainer = self.trainers.get(run)
        if trainer is None or trainer.ended is not None or not trainer.can_checkpoint_now:
            return Reply("handed", run)
        saved = self.saved[run]
        state = trainer.state_dict()
        state["handed_over"] = {"elapsed_s": saved.elapsed_s, "epoch": saved.epoch, "best": unpack_state(saved.best)}
        packed = PackedState.pack(state) if self.copy_state else state
        self.release(run)
        return Reply("handed", run, checkpoint=packed)

    def _predictions(self, trainer: Trainer) -> dict[str, Any] | None:
        return trainer.predictions if trainer.ended is not None else None

    def release(self, run: str) -> None:
        self.trainers.pop(run, None)
        self.saved.pop(run, None)

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        """The run's end at once (its RunEnded as a dict), without a test evaluation; None when
        this host never started it."""
        trainer = self.trainers.get(run)
        if trainer is None:
            return None
        if trainer.ended is not None:
            return trainer.ended.to_dict()
        return trainer.end("stopped", reason, evaluate_test=False).to_dict()

    def handle(self, request: tuple[Any, ...]) -> Reply:
        kind, args = request[0], request[1:]
        if kind == "start":
            return self.start(*args)
        if kind == "advance":
            return self.advance(*args)
        if kind == "stop":
            return self.stop(*args)
        if kind == "hand_over":
            return self.hand_over(*args)
        raise ValueError(f"unknown request {kind!r}")


class LocalExecutor:
    """Every run in this process, interleaved: one slot, requests answered in order."""

    backend = "local"
    can_lose_workers = False
    capacity: int | None = None

    def __init__(self, data: DatasetBundle, device: str) -> None:
        self.device_label = device
        self.host = TrainerHost(data, device, placement("local", device))
        self._queue: deque[tuple[Any, ...]] = deque()

    def slot(self, run: str) -> str:
        return "local"

    def start(self, spec: ResolvedRun, state: State | None) -> None:
        self._queue.append(("start", spec, state))

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> None:
        self._queue.append(("advance", run, checkpoints, budget_s, past_epoch_ends))

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> None:
        self._queue.append(("stop", run, reason, evaluate_test, checkpoint))

    def collect(self, timeout: float) -> list[Reply]:
        if not self._queue:
            import time

            time.sleep(timeout)
            return []
        return [self.host.handle(self._queue.popleft())]

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        self._queue.clear()
        return self.host.end_now(run, reason)

    def release(self, run: str) -> None:
        self.host.release(run)

    def close(self) -> None:
        self._queue.clear()
