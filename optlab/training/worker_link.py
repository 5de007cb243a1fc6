"""The driver's side of one `processes` worker's connection: its process, its runs, and the
requests sent to it, in order, never blocking the driver's loop on a large one.

A request that carries a run's state (its start on a busy worker: a moved, restarted or resumed
run), or is larger than `LARGE_REQUEST`, goes out from a thread: written from the driver's loop,
it could fill the pipe while the worker, busy writing a large reply (a checkpoint) that the
driver would read next, never read it (both blocked for good: seen with a 255 kB state). The
limit is also kept under a quarter of the socket's send buffer: Linux's is about 200 kB,
macOS's 8 kB, less than a small MLP's state (10-50 kB).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optlab.training.threads import DEFAULT_THREADS

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = logging.getLogger("optlab.processes")

LARGE_REQUEST = 32 * 1024


@dataclass
class Worker:
    device: str
    process: BaseProcess
    conn: Connection
    runs: set[str] = field(default_factory=set)
    waiting: deque[str] = field(default_factory=deque)  # runs whose request awaits its reply
    dead: bool = False
    settings: tuple[int, tuple[str, ...]] = (DEFAULT_THREADS, ())  # threads, plugins: what it was started with
    # Requests a sender thread has still to write, in order (None: none, the driver writes).
    backlog: deque[bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    limit: int = LARGE_REQUEST  # the largest request the driver writes itself (`send_limit`)
    closed: bool = False  # it died, or is being shut down: nothing more is written to it

    def post(self, request: tuple[Any, ...], aside: bool = False) -> None:
        """Send a request, in order; a large one, or any `aside` (one that carries a state), from
        a thread, so the driver's loop goes on reading replies meanwhile (a small one written
        here fits the socket's buffer: `limit`)."""
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            if self.closed:
                return  # it died: collect() has reported the loss
            if self.backlog is None and not aside and len(data) <= self.limit:
                with contextlib.suppress(OSError):  # it died before it could read: collect() reports the loss
                    self.conn.send_bytes(data)
                return
            if self.backlog is None:
                self.backlog = deque()
                name = f"optlab-send-{getattr(self.process, 'pid', None)}"  # which worker's, when debugging
                threading.Thread(target=self._drain, name=name, daemon=True).start()
            self.backlog.append(data)

    def _drain(self) -> None:
        try:
            while True:
                with self.lock:
                    if self.closed or not self.backlog:
                        self.backlog = None
                        if self.closed:  # `close` left the connection to this thread, mid-write then
                            self.conn.close()
                        return
                    data = self.backlog.popleft()
                with contextlib.suppress(OSError):
                    self.conn.send_bytes(data)
        except BaseException:
            # Left as it was, every later request would queue behind a thread that is gone and
            # the driver would wait for ever: the worker goes instead, and collect() reports its
            # runs lost (the driver restarts them from their checkpoints).
            log.exception("the sender thread of worker pid %s failed; ending the worker", self.process.pid)
            with self.lock:
                self.closed, self.backlog = True, None
            with contextlib.suppress(Exception):
                self.process.kill()

    def close(self) -> None:
        """Close the connection, now or, while the sender thread writes (its write fails once the
        worker is gone), by that thread after its write: never under a write in progress."""
        with self.lock:
            self.closed = True
            if self.backlog is not None:
                self.backlog.clear()
                return
        self.conn.close()


def send_limit(conn: Connection) -> int:
    """`LARGE_REQUEST`, or a quarter of the socket's send buffer where that is smaller."""
    fd = conn.fileno()
    # A socket object on a duplicate of the descriptor: under a default socket timeout, making
    # it sets O_NONBLOCK, which the duplicate shares with the connection: restored after.
    blocking = os.get_blocking(fd)
    try:
        dup = os.dup(fd)
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            raise
        with sock:
            return min(LARGE_REQUEST, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 4)
    except OSError:  # not a socket (a pipe on Windows): the states go aside still
        return LARGE_REQUEST
    finally:
        os.set_blocking(fd, blocking)
