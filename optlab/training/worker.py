"""The body of one worker process of the `processes` backend.

Nothing here imports torch at module level: the worker must set CUDA_VISIBLE_DEVICES and its
thread count before torch is imported, or the child would see (and initialise) every GPU.
Requests and replies are pickled by hand (`send_bytes`), not through multiprocessing's own
pickler: torch registers shared-memory reductions with that one, which would hand tensors over
as file descriptors that must outlive the sender.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from optlab.training.executor import State, TrainerHost


def send(conn: Connection, message: Any) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def serve(conn: Connection, visible_devices: str, device: str, label: str, threads: int, plugins: list[str]) -> None:
    """Answer the driver's requests until it says exit or goes away."""
    # Ctrl-C in the terminal, and a scheduler's SIGTERM, reach the whole process group: the
    # driver handles them and stops the runs in order, so the workers must not die of them on
    # their own (a worker whose driver is gone leaves at its next request).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    hosts: dict[str, TrainerHost] = {}  # by the data configuration, as JSON: loaded once each
    host_of: dict[str, TrainerHost] = {}
    setup_error = ""
    try:
        from optlab.registry import load_plugins

        load_plugins(plugins)
    except Exception:
        setup_error = traceback.format_exc()
    while True:
        try:
            request = receive(conn)
        except (EOFError, OSError):
            return  # the driver is gone: nothing to answer to
        kind = request[0]
        if kind == "exit":
            return
        if kind == "release":
            host = host_of.pop(request[1], None)
            if host is not None:
                host.release(request[1])
            continue
        if kind == "start":
            spec = request[1]
            reply = _start(hosts, host_of, spec, request[2], request[3], device, label, setup_error)
        else:
            reply = host_of[request[1]].handle(request)
        send(conn, reply)


def _start(
    hosts: dict[str, TrainerHost],
    host_of: dict[str, TrainerHost],
    spec: Any,
    state: State | None,
    fused: tuple[str, int] | str | None,
    device: str,
    label: str,
    setup_error: str,
) -> Any:
    """Start a run on the host of its dataset. `fused`: None when the driver does not fuse,
    else the run's (group, size) in the driver's plan or why it trains on its own."""
    from optlab.training.events import RunEnded
    from optlab.training.executor import Reply, TrainerHost, placement

    key = spec.data.model_dump_json()
    try:
        if setup_error:
            raise RuntimeError(f"the worker could not load its plugins:\n{setup_error}")
        if key not in hosts:
            from optlab.data.datasets import load_dataset

            where = {**placement("processes", device, 0 if device.startswith("cuda") else None), "device": label}
            data = load_dataset(spec.data, device)
            if fused is None:
                hosts[key] = TrainerHost(data, device, where, copy_state=True)
            else:
                from optlab.training.fused.host import FusedHost

                hosts[key] = FusedHost(data, device, where, [], copy_state=True)
        host = hosts[key]
        if fused is not None:
            from optlab.training.fused.host import FusedHost
            from optlab.training.fused.plan import FusionPlan

            if isinstance(host, FusedHost):
                host.assign(FusionPlan(groups={spec.name: fused}) if isinstance(fused, tuple)
                            else FusionPlan(reasons={spec.name: fused}))
    except Exception as exc:
        ended = RunEnded(run=spec.name, status="failed", reason=f"{type(exc).__name__}: {exc}",
                         detail=traceback.format_exc())
        return Reply("started", spec.name, [ended.to_dict()])
    host_of[spec.name] = hosts[key]
    return hosts[key].start(spec, state)
