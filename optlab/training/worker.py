"""The body of one worker process of the `processes` backend.

Nothing here imports torch at module level: the worker must set CUDA_VISIBLE_DEVICES and its
thread count before torch is imported, or the child would see (and initialise) every GPU.
Requests and replies are pickled by hand (`send_bytes`), not through multiprocessing's own
pickler: torch registers shared-memory reductions with that one, which would hand tensors over
as file descriptors that must outlive the sender.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from optlab.training.executor import State, TrainerHost


def send(conn: Connection, message: Any) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def serve(
    conn: Connection, visible_devices: str, device: str, label: str, threads: int, plugins: list[str], data: Any = None
) -> None:
    """Answer the driver's requests until it says exit or goes away. `data` (a DataConfig, or
    None): the dataset to load before the first request, while the driver is still starting."""
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
    _prepare(hosts, data, device, label, setup_error)
    while True:
        try:
            request = receive(conn)
        except (EOFError, OSError):
            _leave()  # the driver is gone: nothing to answer to
        kind = request[0]
        if kind == "exit":
            _leave()
        if kind == "release":
            host = host_of.pop(request[1], None)
            if host is not None:
                host.release(request[1])
            continue
        if kind == "start":
            spec = request[1]
            reply = _start(hosts, host_of, spec, request[2], request[3], device, label, setup_error)
        else:
            reply = _answer(host_of, request)
        send(conn, reply)


def _answer(host_of: dict[str, TrainerHost], request: tuple[Any, ...]) -> Any:
    """The reply to a request for a started run (advance, stop, hand_over)."""
    host = host_of.get(request[1])
    if host is None and request[0] == "stop":
        from optlab.training.executor import Reply

        # The run was handed over to another worker before this stop came (`end_now` at Ctrl-C
        # while it moved): nothing to stop here, and the driver writes the run's end itself.
        # Any other request for a run not hosted here is the driver's bug: left to fail loudly
        # (the worker is then lost and its runs restart), not answered with nothing.
        return Reply("stopped", request[1])
    reply = host_of[request[1]].handle(request)
    if request[0] == "hand_over" and reply.checkpoint is not None:
        del host_of[request[1]]  # it trains on another worker from now on
    return reply


def _leave() -> NoReturn:
    """Exit without tearing the interpreter down: unloading torch took seconds (the driver waits
    for its workers to exit), and a worker has nothing to write: the driver writes everything."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _prepare(hosts: dict[str, TrainerHost], data: Any, device: str, label: str, setup_error: str) -> None:
    """What every first request needs, done before it comes: the training modules, torch's
    compiler front end (torch.optim imports it when an optimizer is built: about 1 s), and the
    dataset when it is known. A failure here is left for the request to meet and report."""
    import importlib

    with contextlib.suppress(Exception):
        for module in ("optlab.training.trainer", "optlab.data.datasets", "torch._dynamo"):
            importlib.import_module(module)
        if data is not None and not setup_error:
            _host(hosts, data, device, label)


def _host(hosts: dict[str, TrainerHost], data: Any, device: str, label: str, fused: bool = False) -> TrainerHost:
    """The host of the runs on dataset `data` (loaded once per configuration): a FusedHost
    where the driver fuses (`fused`), else a TrainerHost."""
    from optlab.training.executor import TrainerHost, placement

    key = data.model_dump_json() + ("+fused" if fused else "")
    if key not in hosts:
        from optlab.data.datasets import load_dataset

        where = {**placement("processes", device, 0 if device.startswith("cuda") else None), "device": label}
        loaded = next((h.data for k, h in hosts.items() if k.startswith(data.model_dump_json())), None)
        loaded = loaded if loaded is not None else load_dataset(data, device)
        if fused:
            from optlab.training.fused.host import FusedHost

            hosts[key] = FusedHost(loaded, device, where, [], copy_state=True)
        else:
            hosts[key] = TrainerHost(loaded, device, where, copy_state=True)
    return hosts[key]


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
    from optlab.training.executor import Reply

    try:
        if setup_error:
            raise RuntimeError(f"the worker could not load its plugins:\n{setup_error}")
        host = _host(hosts, spec.data, device, label, fused is not None)
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
    host_of[spec.name] = host
    return host.start(spec, state)
