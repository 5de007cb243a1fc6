"""The `ray` backend: each run a Ray actor (Ray Core: optlab keeps its own events, run store and
checkpoints); with `--fuse auto` each fusion group one actor (`optlab.training.ray_fused`).
Needs the `ray` extra (`pip install "optlab[ray]"`).

The dataset travels once through Ray's object store (numpy arrays, `ray.put`), not once per
run. Each actor asks for `cpus_per_run` CPUs (always explicit: an actor that asks only for GPUs
still holds a CPU) and `gpus_per_run` GPUs (fractions pack runs onto one GPU); Ray sets the
actor's CUDA_VISIBLE_DEVICES, so it trains on `cuda`, or on the CPU where torch sees no GPU.
An actor waiting for resources is simply a `start` without a reply yet. Replies are collected
with `ray.wait` as they come; an actor that died surfaces in `ray.get` and is reported `lost`,
unless the driver's own node died with it: then every run stops resumable (errors.ClusterLost,
optlab.training.ray_cluster).
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

from optlab.errors import ClusterLost, OptlabError
from optlab.training.events import RunEnded
from optlab.training.executor import Reply, TrainerHost, placement
from optlab.training.ray_cluster import GcsWatch, connect, lost_node, shutdown, started_here

if TYPE_CHECKING:
    from optlab.data.datasets import DatasetBundle
    from optlab.spec import ResolvedRun
    from optlab.training.checkpoint_policy import CheckpointPolicy
    from optlab.training.executor import State

END_TIMEOUT_S = 10.0
# How often the driver looks at the processes of the Ray it started (a poll of each: cheap).
LOCAL_CHECK_S = 0.5
# How long an actor's death waits for news of its node's (see _check_node): a run whose actor
# alone died restarts this much later.
ACTOR_DEATH_GRACE_S = 2.0


def check_resources(ray: Any, gpus_per_run: float | None, cpus_per_run: float) -> float:
    """The GPUs each run asks for (default: 1 where the cluster has GPUs, else 0), refused when
    no node has that many (the run would wait for ever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    most_gpus = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
    most_cpus = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
    if gpus_per_run is None:
        gpus_per_run = 1.0 if most_gpus else 0.0
    if gpus_per_run > most_gpus:
        raise OptlabError(
            f"--gpus-per-run {gpus_per_run:g}: no node of the Ray cluster has that many GPUs "
            f"(the most on one node: {most_gpus:g})"
        )
    if cpus_per_run > most_cpus:
        raise OptlabError(
            f"--cpus-per-run {cpus_per_run:g}: no node of the Ray cluster has that many CPUs "
            f"(the most on one node: {most_cpus:g})"
        )
    return gpus_per_run


def run_capacity(ray: Any, gpus_per_run: float, cpus_per_run: float) -> int:
    """How many runs fit on the cluster at once (nodes counted apart: an actor lives on one)."""
    total = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        have = node.get("Resources", {})
        fits = int(have.get("CPU", 0.0) // cpus_per_run + 1e-9)
        if gpus_per_run:
            fits = min(fits, int(have.get("GPU", 0.0) / gpus_per_run + 1e-9))
        total += fits
    return max(1, total)


def bundle_arrays(data: DatasetBundle) -> dict[str, Any]:
    """A dataset as plain fields with numpy arrays: what goes into the object store once."""
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    for name in data._TENSORS:
        fields[name] = fields[name].cpu().numpy()
    return fields


def bundle_from_store(fields: dict[str, Any], device: str) -> DatasetBundle:
    import torch

    from optlab.data.datasets import DatasetBundle

    # Arrays from the object store are read-only views of shared memory: copy into tensors.
    tensors = {name: torch.from_numpy(np.array(fields[name])) for name in DatasetBundle._TENSORS}
    bundle = DatasetBundle(**{**fields, **tensors})
    return bundle if device == "cpu" else bundle.to(device)


class RunActor:
    """One run in its own Ray actor process (made remote by `RayExecutor`)."""

    def __init__(self, data: dict[str, Any], threads: int, plugins: list[str]) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        if plugins:
            from optlab.registry import load_plugins

            load_plugins(plugins)
        gpu_ids = [str(i) for i in ray.get_gpu_ids()]
        device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
        where = placement("ray", device)
        where["gpu_ids"] = gpu_ids  # what Ray gave it (also fake GPUs on a CPU box)
        self.host = self._host(bundle_from_store(data, device), device, where)

    def _host(self, data: DatasetBundle, device: str, where: dict[str, Any]) -> TrainerHost:
        return TrainerHost(data, device, where, copy_state=True)

    def handle(self, request: tuple[Any, ...]) -> Reply:
        return self.host.handle(request)

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        return self.host.end_now(run, reason)

    def release(self, run: str) -> None:
        self.host.release(run)


class DataKeeper:
    """Owns the dataset's object in Ray's object store, on the driver's node (made remote by
    `RayExecutor`). Were the driver its owner, losing that node would make Ray's core try to
    recover the object through the dead object store and end the driver's process (exit 1, no
    Python code run); owned here, the object is lost with its owner and the driver lives on to
    stop the runs resumable."""

    def hold(self, fields: dict[str, Any]) -> list[Any]:
        import ray

        self.ref = ray.put(fields)
        return [self.ref]  # in a list: the driver borrows the reference, not its value


class RayExecutor:
    backend = "ray"
    can_lose_workers = True
    actor_type: type[RunActor] = RunActor
    # Two intervals in flight per run while they are short (see optlab.training.pipelining): the
    # actor trains the next while the driver reads the last, which hides the round trip.
    depth = 2
    capacity: int | None  # how many runs the cluster fits at once (the first wave)

    def __init__(
        self,
        data: DatasetBundle,
        address: str | None = None,
        gpus_per_run: float | None = None,
        cpus_per_run: float = 1.0,
        threads: int | None = None,
        plugins: list[str] | None = None,
    ) -> None:
        self.ray = connect(address)
        self.gpus_per_run = check_resources(self.ray, gpus_per_run, cpus_per_run)
        self.cpus_per_run = cpus_per_run
        self.capacity = run_capacity(self.ray, self.gpus_per_run, cpus_per_run)
        self.threads = threads or max(1, int(cpus_per_run))
        self.plugins = list(plugins or [])
        self.device_label = f"ray ({self.gpus_per_run:g} GPU, {cpus_per_run:g} CPU per run)"
        self._keeper, self._data_ref = self._keep(bundle_arrays(data))
        self._actor_class = self.ray.remote(self.actor_type)
        self._actors: dict[str, Any] = {}  # slot -> its actor
        self._on: dict[str, set[str]] = {}  # slot -> the runs started on its actor, not yet released
        self._pending: dict[Any, str] = {}  # object ref -> run
        self._checked = time.monotonic()  # when the node was last looked at
        self.lost: str | None = None  # what the driver's node lost (ClusterLost was raised)
        # A joined cluster's GCS is asked whether it answers; a local Ray's is watched as a process.
        self._gcs = None if started_here() else GcsWatch(self.ray.get_runtime_context().gcs_address)

    def _keep(self, fields: dict[str, Any]) -> tuple[Any, Any]:
        """The dataset's object, owned by a DataKeeper on this node (why: its docstring)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(self.ray.get_runtime_context().get_node_id(), soft=False)
        keeper = self.ray.remote(DataKeeper).options(num_cpus=0, scheduling_strategy=here).remote()
        [ref] = self.ray.get(keeper.hold.remote(fields))
        return keeper, ref

    def slot(self, run: str) -> str:
        """The actor a run trains on: its own (a fusing executor puts a group's runs on one)."""
        return run

    def _call(self, run: str, request: tuple[Any, ...]) -> None:
        self._pending[self._actors[self.slot(run)].handle.remote(request)] = run

    def start(self, spec: ResolvedRun, state: State | None) -> None:
        slot = self.slot(spec.name)
        if slot not in self._actors:
            # One run's resources per actor, whatever it hosts: a fused group trains as one model.
            self._actors[slot] = self._actor_class.options(
                num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_restarts=0, max_task_retries=0,
            ).remote(self._data_ref, self.threads, self.plugins)
        self._on.setdefault(slot, set()).add(spec.name)
        self._call(spec.name, self._start_request(spec, state))

    def _start_request(self, spec: ResolvedRun, state: State | None) -> tuple[Any, ...]:
        return ("start", spec, state)

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> None:
        self._call(run, ("advance", run, checkpoints, budget_s, past_epoch_ends))

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> None:
        self._call(run, ("stop", run, reason, evaluate_test, checkpoint))

    def collect(self, timeout: float) -> list[Reply]:
        self._check_node(ask_gcs=False)
        if not self._pending:
            time.sleep(timeout)
            return []
        refs = list(self._pending)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # and whatever else is ready by now, without waiting
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        # A dead actor's later requests go with its first: one `lost` per run.
        return [reply for ref in ready if ref in self._pending for reply in self._reply(ref)]

    def _check_node(self, ask_gcs: bool) -> None:
        """Raise ClusterLost once the driver's own node is gone (ray_cluster's docstring: Ray's
        core would end this process on the next use of its object store, e.g. a restart).
        `ask_gcs` (an actor died): its node's death may reach the GCS a moment after the actor's
        (the raylet kills its workers as it shuts down), so ask for up to ACTOR_DEATH_GRACE_S."""
        now = time.monotonic()
        if not ask_gcs and now - self._checked < LOCAL_CHECK_S:
            return
        self._checked = now
        lost = lost_node(self.ray, ask_gcs) or (self._gcs.lost() if self._gcs is not None else None)
        deadline = now + ACTOR_DEATH_GRACE_S
        while ask_gcs and lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
            lost = lost_node(self.ray, ask_gcs)
        if lost is not None:
            self.lost = lost
            raise ClusterLost(lost)

    def _reply(self, ref: Any) -> list[Reply]:
        from ray.exceptions import RayActorError, RayTaskError

        run = self._pending.pop(ref)
        try:
            return [self.ray.get(ref)]
        except RayActorError as exc:
            self._check_node(ask_gcs=True)  # this node lost: no restart, the runs stop resumable
            # Every run the actor hosted is lost with it, not only the one whose request failed:
            # the others of a fused group may have no request in flight to fail (one at a time).
            slot = self.slot(run)
            self._actors.pop(slot, None)
            runs = sorted(self._on.pop(slot, set()) | {run})
            for other in [r for r, name in self._pending.items() if name in runs]:
                del self._pending[other]
            why = f"(its Ray actor died: {str(exc).splitlines()[0]})"
            return [Reply("lost", name, detail=why) for name in runs]
        except RayTaskError as exc:  # an error in optlab's own code around the trainer
            ended = RunEnded(run=run, status="failed", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                             detail="".join(traceback.format_exception(exc)))
            return [Reply("advanced", run, [ended.to_dict()])]

    def end_now(self, run: str, reason: str) -> dict[str, Any] | None:
        actor = self._actors.get(self.slot(run))
        if actor is None or self.lost:  # the driver says how it ended
            return None
        return self.ray.get(actor.end_now.remote(run, reason), timeout=END_TIMEOUT_S)

    def release(self, run: str) -> None:
        """Its actor goes once it hosts no other run, and with it the resources a waiting run
        may need; until then the actor frees the run's trainer."""
        for ref in [r for r, name in self._pending.items() if name == run]:
            del self._pending[ref]  # e.g. the interval asked for beyond its end
        slot = self.slot(run)
        runs = self._on.get(slot, set())
        runs.discard(run)
        actor = self._actors.get(slot)
        if actor is None:
            return
        if runs:
            actor.release.remote(run)  # answered in order after its requests: nothing to wait for
            return
        self._on.pop(slot, None)
        del self._actors[slot]
        self.ray.kill(actor)

    def close(self) -> None:
        if not self.lost:  # after a lost node the actors are gone with it
            for actor in [*self._actors.values(), self._keeper]:
                self.ray.kill(actor)
        self._actors.clear()
        self._on.clear()
        self._pending.clear()
        shutdown(self.ray)
