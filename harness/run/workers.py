"""What the worker processes share with the harness: the stop flag every client reads on every
loop, the start gate every client waits at before the run's clock starts, how clients are
spread over worker processes, and the multiprocessing context the workers are forked from.

Clients are threads inside a few worker processes (``pool_size``: four a core, so that fewer
threads share a GIL), each with its own context, lock client and recorder buffer, so a run can have
10,000 of them. Where a fault must freeze exactly one client (the nemeses that act on a holder:
client-pause SIGSTOPs its process, client-stall stalls its main thread), every client keeps a
process of its own and runs on its main thread (``one_process_per_client``).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

#: --concurrency bounds: pooled clients (threads), and clients that each need a process
MAX_CLIENTS = 10_000
MAX_CLIENT_PROCESSES = 256
READY_POLL_S = 0.005  # how often the harness looks at the start gate while clients gather
#: a client thread's stack: Python frames live on the heap, what C code a client runs (a
#: driver's socket calls, JSON) needs far less; 10,000 of the 8 MiB default would reserve 80 GB
CLIENT_STACK = 256 * 1024
#: worker processes per core when clients are pooled: bench/scale.py, 1,000 clients on a shared
#: 2-core machine, gave 1,934 and 1,730 acquires/s with 1 a core, 2,658 and 2,265 with 2, 3,112
#: and 2,753 with 4, 3,340 and 2,986 with 8 (fewer threads a process contend for its GIL)
PROCESSES_PER_CORE = 4
#: s, a pool worker's GIL switch interval (CPython's default: 0.005). Every thread waiting for
#: the GIL wakes once an interval: thousands of client threads woke hundreds of thousands of
#: times a second and starved the server they test (1,000 clients: 1,155 to 1,577 acquires/s
#: with 0.005 s, 1,757 to 2,471 with 0.1 s). Client threads give the GIL up at every call to the
#: server, so a long interval hardly ever forces a switch
SWITCH_INTERVAL = 0.1


class StopFlag:
    """Set once by the harness, read by every client on every loop: a plain shared byte, so
    reading it takes no lock (a multiprocessing Event takes a shared lock on every read)."""

    def __init__(self, ctx: BaseContext) -> None:
        self._v = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._v.value = 1

    def is_set(self) -> bool:
        return self._v.value == 1


class StoppedAtGate(BaseException):
    """Raised in a client that passes the start gate after the run stopped: it ends before its
    first op. A BaseException, so that no workload's ``except Exception`` records it."""


class StartGate:
    """The run's start barrier. Made in the harness before the workers fork; each client marks
    itself ready (its lock client made, or tried) and waits; once every client is ready the
    harness fixes the run's clock (t0 and the deadline, in shared memory) and opens the gate by
    closing the write end of a pipe: every worker reads EOF at once. No lock is shared, so a
    stopped process can never hold one."""

    def __init__(self, ctx: BaseContext, clients: int) -> None:
        self.ready = ctx.RawArray("b", clients)  # one byte a client: set, never cleared
        self.clock = ctx.RawArray("q", 2)  # t0, deadline: time.monotonic_ns()
        self._r, self._w = os.pipe()
        self._opened = False
        self._local: threading.Event | None = None  # a pool worker's own: its threads wait on it

    # -- the harness's side

    def ready_count(self) -> int:
        return bytes(self.ready).count(1)  # type: ignore[arg-type]

    def open(self, t0_ns: int, deadline_ns: int) -> None:
        """Start the run's clock; idempotent (a run stopped before it started opens it too, with
        a deadline already past, so waiting clients end at once)."""
        if self._opened:
            return
        self._opened = True
        self.clock[0], self.clock[1] = t0_ns, deadline_ns
        os.close(self._w)
        os.close(self._r)

    # -- a worker's side

    def in_worker(self, threaded: bool) -> None:
        """In a worker right after fork: the harness alone may open the gate."""
        os.close(self._w)
        self._local = threading.Event() if threaded else None

    def wait_open(self) -> None:
        """Block until the harness opens the gate (EOF on the pipe)."""
        select.select([self._r], [], [])  # cooperative where select is (clients as greenlets)
        while os.read(self._r, 1):
            pass

    def pass_through(self, i: int) -> None:
        """Client ``i`` is ready: mark it and wait until the run's clock starts."""
        self.ready[i] = 1
        if self._local is not None:
            self._local.wait()
        else:
            self.wait_open()

    def release_threads(self) -> None:
        """A pool worker's main thread, once ``wait_open`` returned: its client threads go."""
        if self._local is not None:
            self._local.set()

    @property
    def t0_ns(self) -> int:
        return int(self.clock[0])

    @property
    def deadline_ns(self) -> int:
        return int(self.clock[1])


def one_process_per_client(nemeses: Iterable[Any]) -> bool:
    """A nemesis that acts on one lock holder (``client_target``: client-pause, client-stall)
    finds it by its worker's pid and freezes that process, or its main thread: each client must
    be a process of its own."""
    return any(getattr(n, "client_target", False) for n in nemeses)


#: ``threads`` here makes pooled clients threads even where they could be greenlets (to compare)
CLIENTS_ENV = "LOCKHARNESS_CLIENTS"


#: clients a worker from which they are greenlets (where they may be): bench/scale.py, 8 s runs
#: on an idle 2-core machine, threads against greenlets in 8 workers: 10 clients 3,852 and
#: 2,819 acquires/s, 32 clients 4,584 and 4,043, 100 clients 3,018 and 5,513 (a greenlet's wait
#: goes through gevent's event loop: dearer than a thread's blocking call when few share a GIL)
GREEN_FROM = 8


def green_clients(backend: Any, workload: Any, per_worker: int) -> bool:
    """Pooled clients as greenlets (gevent, in each worker process after its fork) rather than
    threads: where the lock client and the workload wait only in Python, and a worker runs
    ``per_worker`` clients, at least ``GREEN_FROM``. Threads of one worker hand its GIL over on
    every call to the server, a futex wait and a context switch each: 1,000 client threads
    spent about half their CPU there (bench/scale.py); greenlets wait together in one event
    loop."""
    if os.environ.get(CLIENTS_ENV) == "threads" or per_worker < GREEN_FROM:
        return False
    if not (getattr(backend, "cooperative", False) and workload.cooperative()):
        return False
    try:
        import gevent  # noqa: F401
    except ImportError:
        return False
    return True


def make_green() -> None:
    """In a pool worker right after its fork, before anything waits: sockets, ``select``,
    ``time.sleep`` and ``threading`` become gevent's, so its client "threads" are greenlets."""
    import warnings

    import gevent
    from gevent import monkey

    # servers are loopback or namespace addresses: resolving one never waits, so no pool of
    # resolver threads (ten a worker by default)
    gevent.config.resolver = "block"
    with warnings.catch_warnings():  # ssl imported before patching: no client here uses TLS
        warnings.simplefilter("ignore")
        monkey.patch_all()


def pool_size(clients: int) -> int:
    """How many worker processes run ``clients`` pooled clients."""
    return max(1, min(clients, (os.cpu_count() or 1) * PROCESSES_PER_CORE))


def spread(clients: int, processes: int) -> list[range]:
    """Client indexes per worker: contiguous and balanced (sizes differ by at most one)."""
    q, r = divmod(clients, processes)
    out, start = [], 0
    for p in range(processes):
        n = q + (p < r)
        out.append(range(start, start + n))
        start += n
    return out


def wait_ready(
    gate: StartGate,
    groups: Sequence[range],
    workers: Sequence[BaseProcess],
    limit_s: float,
    check: Callable[[], None],
) -> bool:
    """The harness's side of the barrier: until every client is ready or ``limit_s`` passed
    (True when all are ready); ``check()`` raises a stop. A worker that ended with clients not
    ready (it crashed) fails the run: RuntimeError, one line."""
    n = sum(len(g) for g in groups)
    end = time.monotonic() + limit_s
    for turn in range(math.ceil(limit_s / READY_POLL_S) + 1):
        if time.monotonic() >= end:
            break
        check()
        if gate.ready_count() >= n:
            return True
        if turn % 20:  # a worker's exit (a waitpid each) is looked at every 20th poll
            time.sleep(READY_POLL_S)
            continue
        for g, w in zip(groups, workers, strict=True):
            if w.exitcode is not None and not all(gate.ready[i] for i in g):
                raise RuntimeError(
                    f"client worker {w.pid} (clients {g.start}-{g.stop - 1}) ended with exit "
                    f"code {w.exitcode} before its clients were ready"
                )
        time.sleep(READY_POLL_S)
    return False


def context() -> BaseContext:
    # fork: workers start in milliseconds and inherit the pipe; they never touch the harness's
    # threads (workers are forked before any thread starts).
    return mp.get_context("fork")
