"""A stalled client: a lock holder's process keeps running, but its main thread keeps the GIL for
``stall_ms`` (a long computation in C, a garbage-collection pause), so the process's other
threads (a library's renewal thread, a session's heartbeat) cannot run either, while the holder
believes they protect it (python-redis-lock #91, Redisson #5698). Unlike client-pause, the
process is never stopped: only what needs the GIL starves.

The harness signals the holder's worker (SIGUSR2); the handler, installed when the worker starts
(``install``, called by ``harness.run.stages``), runs on the main thread and stalls it for the
requested time, read from memory the worker shares with the harness. ``how``:

- ``gil`` (default): one C call that keeps the GIL until the time is up (``clock_nanosleep``
  through ``ctypes.PyDLL``, which never releases it), as a GC pause or a long computation in C
  does: no other thread of the process runs;
- ``spin``: a busy loop in pure Python. CPython hands the GIL to a waiting thread every switch
  interval (5 ms), so the other threads still run, only slower: the control.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time
from typing import Any

from . import options as o
from .base import NemesisError, Plan
from .process import ClientPause

SIGNAL = signal.SIGUSR2
HOW = ("gil", "spin")
# the memory a run's workers share with the harness: [requested ms, how, measured µs + 1]
_shared: Any = None
CLOCK_MONOTONIC, TIMER_ABSTIME = 1, 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _hold_gil(end_ns: int) -> None:
    """Sleep until ``end_ns`` (CLOCK_MONOTONIC) without ever releasing the GIL."""
    libc = ctypes.PyDLL(None)  # PyDLL: the call keeps the GIL, unlike CDLL's
    ts = _Timespec(end_ns // 1_000_000_000, end_ns % 1_000_000_000)
    for _ in range(1000):  # a signal interrupts it (EINTR): sleep on to the same deadline
        if libc.clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ctypes.byref(ts), None) == 0:
            return


def _stall(signum: int, frame: Any) -> None:
    shared = _shared
    t0 = time.monotonic_ns()
    end = t0 + shared[0] * 1_000_000
    if shared[1] == 0:
        _hold_gil(end)
    else:
        while time.monotonic_ns() < end:  # pure Python: the GIL still switches every 5 ms
            pass
    shared[2] = (time.monotonic_ns() - t0) // 1000 + 1


def install() -> None:
    """In a client worker as it starts: handle the stall signal when the run has this fault."""
    if _shared is not None:
        signal.signal(SIGNAL, _stall)


class ClientStall(ClientPause):
    name = "client-stall"
    description = (
        "stall the main thread of a client's worker while it holds a lock, past the TTL, with "
        "the GIL held (a GC pause, a long computation): its process runs on, its renewal "
        "threads starve"
    )
    options = {
        "stall_ms": o.number(
            "2 x ttl: how long the holder's main thread keeps the GIL", lo_open=True
        ),
        "how": o.name(
            "gil: gil (one C call keeps the GIL: no other thread runs) or spin (a pure Python "
            "loop: CPython still hands the GIL to other threads every 5 ms)"
        ),
    }

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        global _shared
        # made before the workers fork (the run builds its nemeses first): they inherit it
        _shared = mp.get_context("fork").RawArray("q", 3)

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        if values.get("how", "gil") not in HOW:
            raise NemesisError(
                f"nemesis {cls.name} option how={values['how']!r} is not accepted: give "
                + " or ".join(HOW)
            )

    def duration(self) -> float:
        return self.opt("stall_ms", 2.0 * self.env.lease_ms) / 1000

    def start(self) -> dict[str, Any]:
        found = self._holder()
        if found is None:
            return self._not_found()
        i, process, key = found
        ms = round(self.opt("stall_ms", 2.0 * self.env.lease_ms))
        how = self.opt("how", "gil")
        _shared[0], _shared[1], _shared[2] = ms, HOW.index(how), 0
        pid = self.env.worker_pids[i]
        try:
            os.kill(pid, SIGNAL)
        except ProcessLookupError:
            return {"injected": False, "why": f"client {i}'s worker had ended"}
        self.pid = pid
        return {
            "client": i,
            "process": process,
            "key": str(key),
            "pid": pid,
            "stall_ms": ms,
            "how": how,
        }

    def stop(self) -> dict[str, Any] | None:
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        # the stall ends by itself; wait a little for the worker's own measure of it
        deadline = time.monotonic() + 2.0
        while _shared[2] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        took = _shared[2]
        return {"pid": pid, "stalled_ms": round((took - 1) / 1000, 1) if took else None}

    def teardown(self) -> None:
        self.pid = None  # nothing to undo: a stall ends by itself
