"""The processes backend's requests and replies without a worker process: a request that
carries a state never blocks the driver and keeps its place in order, a connection is never
closed under a write, a run handed over is not lost with its old worker, and a request for a
run a worker no longer hosts (one that crossed its hand-over) is answered empty."""

from __future__ import annotations

import pickle
import threading
from collections import deque
from multiprocessing import Pipe
from typing import Any

import pytest

from optlab.training.executor import PackedState, Reply
from optlab.training.processes import ProcessExecutor
from optlab.training.worker import _answer, send
from optlab.training.worker_link import LARGE_REQUEST, Worker, send_limit


class SlowConn:
    """A connection whose writes of a state wait for `gate` (a full socket buffer)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.closed = False

    def send_bytes(self, data: bytes) -> None:
        request = pickle.loads(data)
        if request[0] == "start":
            self.writing.set()
            assert self.gate.wait(10.0)
        assert not self.closed, "closed under a write"
        self.sent.append(request)

    def close(self) -> None:
        self.closed = True


def wait_for(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out")


def test_a_request_with_a_state_goes_aside_and_the_order_holds() -> None:
    conn = SlowConn()
    worker = Worker("cpu", None, conn)  # type: ignore[arg-type]
    worker.post(("advance", "a"))
    assert conn.sent == [("advance", "a")]  # small: written at once
    worker.post(("start", "b", {"w": 1}, None), aside=True)  # a few bytes, but a state
    assert conn.writing.wait(10.0)  # the thread writes it, blocked; the driver is not
    worker.post(("advance", "a"))  # after it in line, though small
    assert len(conn.sent) == 1
    conn.gate.set()
    wait_for(lambda: worker.backlog is None)
    assert [r[0] for r in conn.sent] == ["advance", "start", "advance"]
    worker.post(("advance", "a"))  # the backlog done, the driver writes again
    assert len(conn.sent) == 4


def test_a_connection_is_not_closed_under_a_write() -> None:
    conn = SlowConn()
    worker = Worker("cpu", None, conn)  # type: ignore[arg-type]
    worker.post(("start", "b", {"w": 1}, None), aside=True)
    worker.post(("advance", "b"))
    assert conn.writing.wait(10.0)
    worker.close()  # the worker died meanwhile (`_read`): the thread is still in its write
    assert not conn.closed
    conn.gate.set()
    wait_for(lambda: conn.closed)  # closed by the sender thread, once its write returned
    assert [r[0] for r in conn.sent] == ["start"]  # what was left to write went with the worker
    worker.post(("advance", "b"))  # to a closed worker: nothing written, no error
    assert len(conn.sent) == 1


def test_the_send_limit_stays_under_the_socket_buffer() -> None:
    ours, theirs = Pipe()
    try:
        assert 0 < send_limit(ours) <= LARGE_REQUEST
    finally:
        ours.close()
        theirs.close()


def test_reading_the_send_limit_leaves_the_connection_blocking() -> None:
    # Under a default socket timeout a socket object made on a duplicate descriptor turns it
    # non-blocking, and the connection with it: a full buffer would then lose a request.
    import os
    import socket

    ours, theirs = Pipe()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)
    try:
        send_limit(ours)
        assert os.get_blocking(ours.fileno())
    finally:
        socket.setdefaulttimeout(previous)
        ours.close()
        theirs.close()


class DeadProcess:
    pid, exitcode = 12345, -9

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        pass


def test_a_run_handed_over_before_its_worker_died_is_not_lost() -> None:
    ours, theirs = Pipe()
    send(theirs, Reply("handed", "moved", checkpoint=PackedState(b"state")))
    send(theirs, Reply("handed", "stays"))  # no state now: it trains on there
    theirs.close()
    worker = Worker("cpu", DeadProcess(), ours, runs={"moved", "stays", "other"},  # type: ignore[arg-type]
                     waiting=deque(["moved", "stays"]))
    replies = ProcessExecutor(["cpu"], threads=1)._read(worker)
    assert [(r.kind, r.run) for r in replies] == [
        ("handed", "moved"), ("handed", "stays"), ("lost", "other"), ("lost", "stays")]
    assert worker.dead and ours.closed


def test_a_request_for_a_run_handed_over_is_answered_empty() -> None:
    # Ctrl-C while the run moved: the driver's stop reached the worker after its hand-over.
    assert _answer({}, ("stop", "moved", "interrupted", False)) == Reply("stopped", "moved")
    # Anything else for a run not hosted here is the driver's bug: it fails loudly (the worker
    # is then lost and its runs restart), not an empty answer the driver would act on.
    for request in (("advance", "moved", None, 0.0, True), ("hand_over", "moved")):
        with pytest.raises(KeyError):
            _answer({}, request)
