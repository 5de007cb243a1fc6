"""Joining or starting the Ray the `ray` backend trains on, and noticing when it is gone.

Ray, handed an address nothing Ray-like answers at, retries for minutes and prints its C++
log lines on the console; joining a token-authenticated cluster without a token retries for
20 s. So an address is probed first, as Ray will dial it, within `PROBE_TIMEOUT_S` in all: a
plain TCP connect, then the one request a Ray head (its GCS) answers first. Only an address that
answers as a Ray head goes to `ray.init`.

The driver cannot train on once its own node is gone (its raylet, an agent the raylet
fate-shares with, or the GCS): the runs' actors went with it, a restart would wait for a node
that is not coming back, and Ray's C++ core ends the driver (exit code 1, no Python code run)
as soon as it touches that node's object store. So the executor asks `lost_node` before it
restarts a run, and every 0.5 s for the Ray it started, and raises errors.ClusterLost: the runs
then stop as with Ctrl-C, each resumable from its last checkpoint, which the driver holds.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from optlab.errors import OptlabError

EXTRA_HINT = 'the ray backend needs the ray extra: pip install "optlab[ray]"'
PROBE_TIMEOUT_S = 3.0  # the TCP connect and the GCS request together
GCS_CHECK_S = 5.0  # how often a joined cluster's GCS is asked whether it answers (GcsWatch)
GCS_SILENT_S = 30.0  # how long it may stay silent: half of what Ray's core gives it
TOKEN_HINT = ("a cluster with token authentication needs RAY_AUTH_MODE=token (and its token, ~/.ray/auth_token "
              "or RAY_AUTH_TOKEN) here too")

_started_here = False  # whether this process started the Ray it is connected to (and so stops it)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptlabError(EXTRA_HINT) from None
    return ray


def started_here() -> bool:
    return _started_here


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) as Ray takes it; anything else is one line."""
    expected = f"--address {address}: expected auto or HOST:PORT of a Ray head node (its GCS port, 6379 by default)"
    if address.startswith("ray://"):
        raise OptlabError(f"{expected}; Ray Client (ray://) addresses are not supported")
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() or c in "/@" for c in host):
        raise OptlabError(expected)
    return host, int(port)


def _dialled(address: str) -> tuple[str, int] | None:
    """Where `ray.init(address)` will dial: `auto` read as Ray reads it (RAY_ADDRESS, else the
    cluster `ray start` recorded; None when neither), and this machine's own names replaced by
    its node IP, as Ray replaces them."""
    if address != "auto":
        split_address(address)
    try:
        from ray._private.services import canonicalize_bootstrap_address

        dialled = canonicalize_bootstrap_address(address)
    except Exception:  # noqa: BLE001 - Ray's private helper changed or refused: probe what was given
        dialled = None if address == "auto" else address
    return None if dialled is None else split_address(dialled)


def _auth_metadata() -> tuple[tuple[str, str], ...]:
    """The token header Ray's own gRPC clients send, where token authentication is on."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return ()
    try:
        from ray._private.authentication.grpc_authentication_client_interceptor import (
            _get_authentication_metadata_tuple,
        )

        return tuple(_get_authentication_metadata_tuple())
    except Exception:  # noqa: BLE001 - no token, or Ray moved it: the request goes without
        return ()


def probe(address: str) -> None:
    """Refuse, within PROBE_TIMEOUT_S, an address that does not answer as a Ray head."""
    target = _dialled(address)
    if target is None:
        return  # `auto` with nothing recorded: ray.init says so at once
    host, port = target
    dial = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets, as gRPC wants
    where = dial if dial == address else f"{address} ({dial})"
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise OptlabError(
            f"--address {where}: no Ray cluster answers there (TCP connect: {exc.strerror or exc}); "
            f"start one with `ray start --head` or check the address"
        ) from None
    code = gcs_request(dial, max(0.1, deadline - time.monotonic()))
    if code is not None and code != "OK":
        if code == "UNAUTHENTICATED":
            if address == "auto" and "RAY_AUTH_MODE" not in os.environ:
                return  # a Ray head: for `auto` Ray turns tokens on itself where it has one
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                raise OptlabError(f"--address {where}: the Ray cluster there refused to answer; {TOKEN_HINT}")
            raise OptlabError(f"--address {where}: the Ray cluster there refused this machine's token "
                              f"(~/.ray/auth_token or RAY_AUTH_TOKEN must be the cluster's)")
        raise OptlabError(
            f"--address {where}: something listens there, but no Ray head: it did not answer Ray's GCS "
            f"request within {PROBE_TIMEOUT_S:g} s ({code}); check the port "
            f"(`ray start --head` prints it, 6379 by default)"
        )


def gcs_request(dial: str, timeout: float) -> str | None:
    """The first request Ray makes of a head (its GCS) at `dial`: "OK", or the gRPC status's
    name (UNAUTHENTICATED: a Ray head that wants a token; DEADLINE_EXCEEDED: no Ray there, or
    none that answers); None where Ray's generated client is not to be had (private, untyped)."""
    try:
        import grpc

        messages: Any = importlib.import_module("ray.core.generated.gcs_service_pb2")
        services: Any = importlib.import_module("ray.core.generated.gcs_service_pb2_grpc")
    except ImportError:
        return None
    channel = grpc.insecure_channel(dial)
    try:
        services.NodeInfoGcsServiceStub(channel).GetClusterId(
            messages.GetClusterIdRequest(), metadata=_auth_metadata(), timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return str(getattr(code, "name", code))
    finally:
        channel.close()
    return "OK"


class GcsWatch:
    """Whether a joined cluster's GCS still answers. Ray's core ends the driver (exit code 1, no
    Python code run) once its GCS has been silent for 60 s (gcs_rpc_server_reconnect_timeout_s):
    after GCS_SILENT_S of silence, `lost` says so first, while a GCS that restarts sooner (Ray's
    fault tolerance) costs nothing. A Local Ray's GCS is watched as a process instead."""

    def __init__(self, dial: str) -> None:
        self.dial = dial
        self.next = time.monotonic() + GCS_CHECK_S
        self.silent_since: float | None = None

    def lost(self) -> str | None:
        now = time.monotonic()
        if now < self.next:
            return None
        self.next = now + GCS_CHECK_S
        if gcs_request(self.dial, GCS_CHECK_S / 2) in ("OK", "UNAUTHENTICATED", None):
            self.silent_since = None
            return None
        self.silent_since = self.silent_since or now
        if now - self.silent_since < GCS_SILENT_S:
            return None
        return f"the cluster's GCS at {self.dial} has not answered for {now - self.silent_since:.0f} s"


@contextlib.contextmanager
def _as_optlab_left_it() -> Iterator[None]:
    """Around `ray.init`: keep the SIGTERM handler optlab installed (Ray's own exits with code 15
    and no resumable run), and keep Ray's token banner off the console (the local Ray is the
    experiment's own; a joined cluster's mode is the user's to set)."""
    banner = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = banner.level
    banner.setLevel(logging.ERROR)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        banner.setLevel(level)
        if main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _cluster_messages_to_the_log() -> None:
    """Ray's driver prints the cluster's error messages (a node marked dead, a worker killed for
    memory) on stdout, from a thread of its own, into the middle of `--format json`: they go to
    the `optlab.ray` logger instead; optlab says what they mean for the runs in its own words.
    (Ray's private hook: where it moved, its messages stay where Ray puts them.)"""
    try:
        worker: Any = importlib.import_module("ray._private.worker")
        original = worker.print_to_stdstream
    except (ImportError, AttributeError):
        return
    if getattr(original, "optlab", False):
        return
    log = logging.getLogger("optlab.ray")

    def to_log(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":  # not the error listener's (worker output is off anyway)
            original(data, ignore_prefix)
            return
        for line in data.get("lines", []):
            log.info("%s", line)

    to_log.optlab = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_log


def connect(address: str | None) -> Any:
    """Join the cluster at `address` (`auto`: RAY_ADDRESS or the one on this machine), or start a
    local Ray for this experiment; once per process. Worker output stays off the console."""
    global _started_here
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address:
        probe(address)
    try:
        # Without an address, a Ray of our own ("local"): never one a stale record in Ray's temp
        # directory points to, which `address=None` would try to join.
        with _as_optlab_left_it():
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not address:
            raise OptlabError(f"--backend ray: cannot start a local Ray ({first})") from None
        token = "auth" in first.lower() and os.environ.get("RAY_AUTH_MODE", "").lower() != "token"
        hint = f"; {TOKEN_HINT}" if token else ""
        raise OptlabError(f"--address {address}: cannot join the Ray cluster ({first}){hint}") from None
    _started_here = not address
    _cluster_messages_to_the_log()
    return ray


def shutdown(ray: Any) -> None:
    """Stop the Ray this process started (a joined cluster stays up)."""
    global _started_here
    if _started_here:
        ray.shutdown()
        _started_here = False


def _local_process_gone() -> str | None:
    """For the Ray this process started: its raylet or GCS server exited (Ray's own record of the
    processes it started; absent in another Ray version, where the GCS check below remains)."""
    try:
        worker: Any = importlib.import_module("ray._private.worker")
        processes = worker._global_node.all_processes
    except Exception:  # noqa: BLE001 - not ours, or Ray changed
        return None
    for kind in ("raylet", "gcs_server"):
        for info in processes.get(kind, []):
            code = info.process.poll()
            if code is not None:
                logs = getattr(worker._global_node, "get_logs_dir_path", lambda: "")()
                return f"{kind} pid {info.process.pid} exited with code {code}, see {logs}/{kind}.out"
    return None


def lost_node(ray: Any, ask_gcs: bool) -> str | None:
    """What the driver's own Ray node lost, or None while it can train on. `ask_gcs`: also ask the
    GCS whether this node is still alive (after an actor died; on a joined cluster the only way
    to tell a lost node of this machine from a lost worker elsewhere, whose runs restart)."""
    if _started_here:
        gone = _local_process_gone()
        if gone is not None:
            return gone
    if not ask_gcs:
        return None
    context = ray.get_runtime_context()
    # ray.nodes() waits for a silent GCS as long as Ray's core lets the driver live: ask first.
    if gcs_request(context.gcs_address, GCS_CHECK_S / 2) not in ("OK", "UNAUTHENTICATED", None):
        return f"the cluster's GCS at {context.gcs_address} does not answer"
    try:
        me = context.get_node_id()
        alive = {n.get("NodeID"): n.get("Alive") for n in ray.nodes()}
    except Exception as exc:  # noqa: BLE001 - the GCS itself does not answer
        return f"the GCS does not answer: {type(exc).__name__}"
    if not alive.get(me, False):
        return f"this machine's node {me[:8]} is dead: its raylet, or an agent the raylet fate-shares with"
    return None
