"""The clients' scheduling lag, measured from ``/proc`` while they run, without touching them.

A client the machine starves (runnable, waiting for a CPU) or that something stops (SIGSTOP)
looks to a lock exactly like a paused client: its lease runs out while it believes it holds. A
monitor thread of the harness samples every worker process and each of its threads:

- ``/proc/PID/task/TID/schedstat``: field 2 is the time the thread spent waiting on a runqueue
  (ns). The kernel credits a wait when the thread is scheduled in, all at once: a thread starved
  for 600 ms shows nothing, then 600 ms in one sample. So a wait that grew by more than the wall
  time since the last sample is a *runqueue* stall that long, ending at that sample; one that
  grew by more than ``WAIT_SHARE`` of it, a stall of that interval (``runqueue_window``);
- ``/proc/PID/stat``'s state: ``T`` or ``t`` (stopped, traced) is a *stopped* stall, from the
  last sample that saw it running to the first that sees it running again (a conservative
  window: the stop happened somewhere inside it). Read only when the main thread's schedstat
  did not move, since a thread that ran or waited was not stopped: that keeps a sweep cheap (the
  sample in which it was being stopped may have moved: the window starts one sample earlier);
- a pool of client threads (several clients in one worker process) whose threads together ran
  or waited for a CPU ``GIL_SHARE`` of the time between two samples: its GIL was saturated, and
  its other client threads, asleep on the GIL where no runqueue shows them, queued for it: a
  *gil* stall of all its clients (a process running one client is busy with its own work, the
  lock library's included: no stall of the harness's);
- its own wake-up lateness: of a sample later than planned by more than ``LATE_S``, the part
  the monitor thread spent waiting for a CPU (its own runqueue wait, from its schedstat), when
  at least ``LATE_S``, is a *harness* stall that long (a starved harness is starved too, and
  blind meanwhile); the rest, the harness's own threads holding the GIL (a busy history pump),
  starves no client and is only recorded (``gil_late_ms``).

Adjacent stalled intervals merge into windows, a process's threads into one when it runs one
client (its helper threads are that client's), kept per thread in a pool of client threads;
``lag.json`` (``checkers.starvation.LAG``)
records them with the times of the history (ns since the run's ``t0``), so ``harness check``
judges them again later. Which windows were planned faults, and what they mean for the verdict,
is the checker's (``checkers/starvation.py``): this module only measures.

The cost is bounded: the monitor sleeps at least ``1 / COST_SHARE`` times what its last sweep
took (between ``MIN_INTERVAL_S`` and ``MAX_INTERVAL_S``), reads through file descriptors kept
open (``pread``, no open per sample) up to ``MAX_OPEN`` and ``FD_SHARE`` of the soft
``RLIMIT_NOFILE`` (the rest opened per read: the harness keeps the descriptors it needs), and
stops at the run's end or its own time bound, whichever comes first. A file it could not read
for another reason than its process or thread having exited (``EMFILE``, ``EACCES``) makes the
record ``partial``, with how many were ``unreadable``: what it did not see, it does not claim.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.starvation import GIL, HARNESS, LAG, RUNQUEUE, SAFE_SHARE, STOPPED, VERSION

from . import store

MIN_INTERVAL_S = 0.025
MAX_INTERVAL_S = 0.25
COST_SHARE = 0.05  # the monitor's CPU at most ~5% of one core, whatever the client count
WAIT_SHARE = 0.5  # a runqueue wait above half of the wall time between samples is a stall
GIL_SHARE = 0.9  # a pool's threads busy this much of the time: its GIL is saturated
LATE_S = 0.1  # a sample later than planned by more: the harness itself was not scheduled
RESCAN_S = 1.0  # how often a worker's thread list is read again (new threads)
MIN_LISTED_S = 0.05  # shorter windows count in the totals, not in the list
MAX_LISTED = 5000  # windows listed in lag.json (the longest kept)
MAX_OPEN = 4096  # file descriptors kept open for sampling; beyond, opened per read
FD_SHARE = 0.25  # of the soft fd limit at most kept open: the rest is the harness's (sockets)
EXITED = (errno.ENOENT, errno.ESRCH)  # a /proc file's process or thread is gone


def exited(e: OSError) -> bool:
    """The read failed because its process or thread ended (any other failure: unread)."""
    return e.errno in EXITED


def open_cap() -> int:
    """How many descriptors the monitor may keep open: FD_SHARE of the soft limit now."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_OPEN if soft == resource.RLIM_INFINITY else min(MAX_OPEN, int(soft * FD_SHARE))


@dataclass
class Track:
    """One process's samples -> its stopped windows.

    ``add(t, stalled)`` says whether the interval ending at sample time ``t`` (since the
    previous sample) was stalled; consecutive stalled intervals are one window, opened one
    sample earlier with ``back`` (the sample that saw the stop begin may not have known it)."""

    kind: str
    back: bool = False
    prev_t: int | None = None
    prev2_t: int | None = None
    open_at: int | None = None  # start of the window in progress
    windows: list[tuple[int, int]] = field(default_factory=list)

    def add(self, t: int, stalled: bool) -> None:
        if self.prev_t is not None:
            if stalled and self.open_at is None:
                early = self.prev2_t if self.back and self.prev2_t is not None else None
                self.open_at = early if early is not None else self.prev_t
            elif not stalled and self.open_at is not None:
                self.windows.append((self.open_at, self.prev_t))
                self.open_at = None
        self.prev2_t, self.prev_t = self.prev_t, t

    def finish(self) -> None:
        if self.open_at is not None and self.prev_t is not None:
            self.windows.append((self.open_at, self.prev_t))
            self.open_at = None


def runqueue_window(prev_t: int, t: int, dwait_ns: int) -> tuple[int, int] | None:
    """The runqueue stall a sample shows: a wait credited longer than the interval is a stall
    that long, up to this sample; one above WAIT_SHARE of the interval, the interval."""
    dt = t - prev_t
    if dt <= 0 or dwait_ns <= WAIT_SHARE * dt:
        return None
    return (t - dwait_ns, t) if dwait_ns > dt else (prev_t, t)


def gil_saturated(dt_ns: int, busy_ns: int) -> bool:
    """A pool's threads ran or waited for a CPU nearly all the time between two samples: one of
    them always had the GIL or wanted a CPU for it, so the others (sleeping on the GIL, which no
    runqueue shows) queued for it."""
    return dt_ns > 0 and busy_ns >= GIL_SHARE * dt_ns


def stopped_stalled(prev_state: str | None, state: str) -> bool:
    """The interval between two samples holds a stop when either end saw the process stopped
    (it stopped after the earlier sample, or resumed before the later one)."""
    return state in "Tt" or (prev_state is not None and prev_state in "Tt")


def _extend(windows: list[tuple[int, int]], win: tuple[int, int]) -> None:
    """Add a window, merged with the last one when they touch: a thread starved for minutes
    keeps one window, not one a sample."""
    if windows and win[0] <= windows[-1][1]:
        windows[-1] = (min(windows[-1][0], win[0]), max(windows[-1][1], win[1]))
    else:
        windows.append(win)


def merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching windows as one (a process's threads, several kinds)."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


class _Reader:
    """A /proc file read again and again: pread on a descriptor kept open (opened per read once
    ``open_cap()`` are open). Opening checks that the file exists (OSError otherwise)."""

    open_count = 0

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDONLY)
        if _Reader.open_count < open_cap():
            _Reader.open_count += 1
        else:
            os.close(self.fd)
            self.fd = None

    def read(self) -> bytes:
        if self.fd is not None:
            return os.pread(self.fd, 512, 0)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return os.read(fd, 512)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
            _Reader.open_count -= 1


@dataclass
class _Thread:
    schedstat: _Reader
    windows: list[tuple[int, int]] = field(default_factory=list)  # runqueue stalls
    t: int = -1
    run: int = -1
    wait: int = -1
    gone: bool = False


@dataclass
class _Worker:
    pid: int
    slot: int  # its place in env.worker_pids
    stat: _Reader | None = None
    threads: dict[int, _Thread] = field(default_factory=dict)
    stop_track: Track = field(default_factory=lambda: Track(STOPPED, back=True))
    state: str | None = None
    rescanned: float = 0.0
    gone: bool = False
    pooled: bool = False  # it runs several clients, as threads sharing one GIL
    busy_t: int = -1  # the previous sample's time, for the GIL's share
    gil: list[tuple[int, int]] = field(default_factory=list)  # saturated: clients queued

    def close(self) -> None:
        if self.stat is not None:
            self.stat.close()
        for th in self.threads.values():
            th.schedstat.close()


def _state(stat: bytes) -> str:
    """The state letter of a /proc/.../stat line (after the command name's last ')')."""
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3].decode()


class LagMonitor:
    """The monitor thread: ``start()`` once the workers run, ``stop()`` when the load ends,
    then ``record()`` is lag.json's object. ``worker_pids`` may still grow while it runs."""

    def __init__(
        self,
        worker_pids: list[int],
        t0_ns: int,
        *,
        clients: int | Sequence[range],
        lease_ms: float | None,
        limit_s: float,
    ) -> None:
        self.pids = worker_pids
        self.t0 = t0_ns
        # the client indexes each worker runs, in the order of worker_pids (an int: one each)
        self.groups = (
            [range(i, i + 1) for i in range(clients)]
            if isinstance(clients, int)
            else [range(g.start, g.stop) for g in clients]
        )
        self.clients = sum(len(g) for g in self.groups)
        self.lease_ms = lease_ms
        self.limit_s = limit_s
        self.workers: dict[int, _Worker] = {}
        self.late: list[tuple[int, int]] = []  # the monitor's own late wake-ups
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag-monitor", daemon=True)
        self.sweeps = 0
        self.sweep_s = 0.0
        self.cpu_s = 0.0
        self.max_threads = 0
        self.intervals: list[float] = []
        self._own: _Reader | None = None  # the monitor thread's own schedstat
        self._own_waited = -1
        self.gil_late_s = 0.0  # the longest lateness the harness's own threads caused
        self.max_gap_ns = 0  # the longest time between two samples: how sharp a window's edges are
        self.error: str | None = None
        self.started_ns = 0
        self.ended_ns = 0
        # (pid, tid; tid 0: the worker's stat or task list) whose files could not be read while
        # they existed: their samples are missing, the record is partial
        self.unreadable: set[tuple[int, int]] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _now(self) -> int:
        return time.monotonic_ns() - self.t0

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        try:
            self._own = _Reader(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        except OSError:  # its own lateness is then all counted as the CPU's: say it
            self.unreadable.add((os.getpid(), threading.get_native_id()))
        self._own_wait()
        self.started_ns = self._now()
        end = time.monotonic() + self.limit_s
        interval = MIN_INTERVAL_S
        cost = 0.0
        last_t = 0
        due = time.monotonic()
        max_sweeps = int(self.limit_s / MIN_INTERVAL_S) + 2
        try:
            while self.sweeps < max_sweeps and time.monotonic() < end:
                now = time.monotonic()
                late = now - due
                t = self._now()
                if self.sweeps:
                    self.max_gap_ns = max(self.max_gap_ns, t - last_t)
                last_t = t
                waited = self._own_wait()
                if late > LATE_S:  # the CPU's doing (its runqueue wait), and the GIL's
                    cpu = late if waited is None else min(late, waited / 1e9)
                    if cpu >= LATE_S:
                        self.late.append((t - int(cpu * 1e9), t))
                    # the rest: the harness's own threads held the GIL, which starves no client
                    self.gil_late_s = max(self.gil_late_s, late - cpu)
                a = time.thread_time()  # this thread's CPU: waiting for the GIL costs nothing
                self._sweep(t)
                took = time.thread_time() - a
                self.sweeps += 1
                self.sweep_s += took
                cost = took if self.sweeps == 1 else 0.8 * cost + 0.2 * took  # one slow sweep
                interval = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, cost / COST_SHARE))
                self.intervals.append(interval)
                due = now + interval
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
        except Exception as e:  # a measurement must never cost the run: say what failed
            self.error = f"{type(e).__name__}: {e}"[:300]
        finally:
            self.ended_ns = self._now()
            self.cpu_s = time.thread_time() - cpu0
            for w in self.workers.values():
                w.close()
            if self._own is not None:
                self._own.close()

    def _own_wait(self) -> int | None:
        """The monitor thread's runqueue wait since the last call (ns); None if unknown."""
        if self._own is None:
            return None
        try:
            wait = int(self._own.read().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        before, self._own_waited = self._own_waited, wait
        return wait - before if before >= 0 else 0

    def _sweep(self, t: int) -> None:
        for slot, pid in enumerate(list(self.pids)):
            w = self.workers.get(pid)
            if w is None:
                w = self.workers[pid] = _Worker(pid, slot)
                w.pooled = slot < len(self.groups) and len(self.groups[slot]) > 1
            if not w.gone:
                self._sample(w, t)
        self.max_threads = max(
            self.max_threads, sum(len(w.threads) for w in self.workers.values() if not w.gone)
        )

    def _sample(self, w: _Worker, t: int) -> None:
        pid = w.pid
        try:
            if w.stat is None:
                w.stat = _Reader(f"/proc/{pid}/stat")
            if not w.threads or time.monotonic() - w.rescanned > RESCAN_S:
                w.rescanned = time.monotonic()
                for tid in map(int, os.listdir(f"/proc/{pid}/task")):
                    if tid not in w.threads:
                        try:
                            w.threads[tid] = _Thread(_Reader(f"/proc/{pid}/task/{tid}/schedstat"))
                        except OSError as e:  # tried again at the next rescan
                            if not exited(e):
                                self.unreadable.add((pid, tid))
        except OSError as e:
            if exited(e):  # the worker ended
                w.gone = True
                w.close()
            else:  # unread this time (out of descriptors?): tried again at the next sweep
                self.unreadable.add((pid, 0))
                w.rescanned = 0.0
                self._missed(w)
            return
        main_moved = False  # unknown (a first sample, no schedstat): the state is read
        busy = 0  # ns its threads ran or waited for a CPU since the last sample
        for tid, th in w.threads.items():
            if th.gone:
                continue
            try:
                run, wait = map(int, th.schedstat.read().split()[:2])
            except OSError as e:
                if not exited(e):  # a missed sample: no window may span it
                    self.unreadable.add((pid, tid))
                    th.wait = -1
                    continue
                th.gone = True
                th.schedstat.close()
                continue
            except ValueError:
                th.gone = True
                th.schedstat.close()
                continue
            if th.wait >= 0:
                busy += (run - th.run) + (wait - th.wait)
                if (win := runqueue_window(th.t, t, wait - th.wait)) is not None:
                    _extend(th.windows, win)
                if tid == pid:
                    main_moved = run != th.run or wait != th.wait
            th.t, th.run, th.wait = t, run, wait
        if w.pooled and w.busy_t >= 0 and gil_saturated(t - w.busy_t, busy):
            _extend(w.gil, (w.busy_t, t))
        w.busy_t = t
        # A stopped process neither runs nor waits: only a main thread that did neither is read
        # for its state (most samples of a busy client skip this read).
        state = "R"
        if not main_moved:
            try:
                state = _state(w.stat.read())
            except OSError as e:
                if exited(e):
                    w.gone = True
                    w.close()
                else:
                    self.unreadable.add((pid, 0))
                    self._missed(w)
                return
            except ValueError:
                w.gone = True
                w.close()
                return
        w.stop_track.add(t, stopped_stalled(w.state, state))
        w.state = state

    @staticmethod
    def _missed(w: _Worker) -> None:
        """A worker's sample not taken: its windows end at the last one taken and begin again
        from the next, none spans what was not seen."""
        w.stop_track.finish()
        w.stop_track.prev_t = w.stop_track.prev2_t = None
        w.state = None
        w.busy_t = -1

    def record(self) -> dict[str, Any]:
        """lag.json's object: the windows (ns since the run's t0, as the history's times) and
        what the measuring cost."""
        one_each = len(self.pids) == len(self.groups) and all(len(g) == 1 for g in self.groups)
        rows: list[dict[str, Any]] = []
        per_slot = [0] * len(self.pids)
        for w in self.workers.values():
            w.stop_track.finish()
            stops = merge(w.stop_track.windows)
            waits = merge([x for th in w.threads.values() for x in th.windows])
            row: dict[str, Any] = {"pid": w.pid, "slot": w.slot}
            if w.slot < len(self.groups):  # the clients it runs: a stop stops them all
                row["clients"] = [self.groups[w.slot].start, self.groups[w.slot].stop]
            rows += [{**row, "kind": STOPPED, "start": s, "end": e} for s, e in stops]
            if one_each:  # the client and its helper threads (a renewal, a heartbeat): one
                rows += [{**row, "kind": RUNQUEUE, "start": s, "end": e} for s, e in waits]
            else:  # a pool: each thread is a client of its own, which one is not known here
                rows += [
                    {**row, "tid": tid, "kind": RUNQUEUE, "start": s, "end": e}
                    for tid, th in w.threads.items()
                    for s, e in merge(th.windows)
                ]
            gil = merge(w.gil)
            rows += [{**row, "kind": GIL, "start": s, "end": e} for s, e in gil]
            per_slot[w.slot] = sum(e - s for s, e in merge(stops + waits + gil))
        for s, e in merge(self.late):
            rows.append({"pid": os.getpid(), "slot": None, "kind": HARNESS, "start": s, "end": e})
        floor = MIN_LISTED_S  # below a quarter of a short TTL too: the checker's threshold
        if self.lease_ms:
            floor = min(floor, SAFE_SHARE * self.lease_ms / 1000)
        listed = [r for r in rows if r["end"] - r["start"] >= floor * 1e9]
        listed.sort(key=lambda r: r["start"] - r["end"])  # longest first
        dropped = max(0, len(listed) - MAX_LISTED)
        listed = sorted(listed[:MAX_LISTED], key=lambda r: (r["start"], str(r["pid"])))
        span_s = max(1e-9, (self.ended_ns - self.started_ns) / 1e9)
        return {
            "version": VERSION,
            "measured": self.sweeps > 0 and self.error is None,
            **({"error": self.error} if self.error else {}),
            # threads and workers missed for a while or for good: their stalls may be unseen
            "partial": bool(self.unreadable),
            "unreadable": len(self.unreadable),
            "clients": self.clients,
            "worker_pids": list(self.pids),
            "one_client_per_worker": one_each,
            "lease_ms": self.lease_ms,
            "from_ns": self.started_ns,
            "to_ns": self.ended_ns,
            "sweeps": self.sweeps,
            "threads": self.max_threads,
            "interval_ms": [
                round(min(self.intervals, default=0) * 1000, 1),
                round(max(self.intervals, default=0) * 1000, 1),
            ],
            "max_gap_ms": round(self.max_gap_ns / 1e6, 1),
            "gil_late_ms": round(self.gil_late_s * 1000, 1),
            "cost": {
                "cpu_s": round(self.cpu_s, 3),
                "cpu_share": round(self.cpu_s / span_s, 4),
                "mean_sweep_ms": round(self.sweep_s / max(1, self.sweeps) * 1000, 3),
            },
            "rules": {
                "wait_share": WAIT_SHARE,
                "gil_share": GIL_SHARE,
                "late_s": LATE_S,
                "min_listed_s": round(floor, 4),
            },
            "stalled_ns_by_worker": per_slot,
            "windows": listed,
            "windows_dropped": dropped,
        }


@contextlib.contextmanager
def monitored(
    run_dir: Path,
    worker_pids: list[int],
    t0_ns: int,
    clients: int | Sequence[range],
    lease_ms: float | None,
    limit_s: float,
) -> Iterator[dict[str, Any]]:
    """Monitor the workers while the block runs; the yielded dict is filled with lag.json's
    object on exit, which is also written into the run directory. ``clients``: the client
    indexes each worker runs (``workers.spread``), or their number when each runs one."""
    mon = LagMonitor(worker_pids, t0_ns, clients=clients, lease_ms=lease_ms, limit_s=limit_s)
    out: dict[str, Any] = {}
    mon.start()
    try:
        yield out
    finally:
        mon.stop()
        out.update(mon.record())
        with contextlib.suppress(OSError):
            store.write_json(run_dir / LAG, out)
