"""Whose fault is damaged data: the lock's, or the system's around it (the store, the scheduler)?

A lost update or a job slot run twice is the lock's fault only when two clients could have acted
on the data at once. A client *acts as holder* of a key from its acquire's ``ok`` to the
invocation of its release, whatever that release's outcome: the workloads write nothing after
invoking release. A process that acquires again without a release in between is one owner; one
that never invokes a release acts to the end of the history. Two clients *acted at once* on a key
while their acting intervals overlapped (a concurrent holder, or a stale one that woke after its
lock was given away: the mutex checker's overlaps and revoked holders that went on acting).

The rule, simple and conservative (any doubt blames the lock):

- a lost update is the lock's when two clients acted at once on its key at any moment from the
  start of the lost add's hold (its invocation, when no hold of its process covers it) to the
  start of the final read; or when some add of that key was made by a process that held no lock
  on it (a writer without the lock: its read is not in the history, so the whole key is suspect);
- a slot run more than once is the lock's when two clients acted at once on the job's key at any
  moment from the start of the hold of its first execution to the end of its last, or when one
  of its executions ran outside a hold of its process;
- anything else is the store's (it lost acknowledged writes, e.g. persistence off under kill)
  or the scheduler's (it ran a slot again under a lock that kept mutual exclusion).

Acting intervals are read from the history directly, not from the mutex checker's holds: the
data only cares whether two clients acted at once, which the lock model's other findings (a lock
given away after its holder stopped, a lease that lapsed) cannot cause. What the history cannot
show is not blamed on the lock: a write whose outcome is unknown is taken to have landed within
its writer's hold (a write delivered by the network after its client gave up would look like the
store's loss; fencing is what guards against it).

A history with no ``ok`` acquire has no lock to blame or clear: ``Acting.locked`` is False and
the checkers leave blame undecided (None).
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from .history import NEMESIS, Op, exact

LOCK = "lock"
FOREVER = sys.maxsize  # the end of an acting interval whose release never came
ALWAYS = (-FOREVER, FOREVER)  # a key whose every moment is suspect
_NOBODY = object()  # no process yet


def _first(x: tuple[Any, ...]) -> Any:
    return x[0]


def blame_word(by_lock: int, by_other: int, other: str) -> str | None:
    """ "lock", ``other`` ("store", "scheduler"), "both", or None when nothing was damaged."""
    if by_lock and by_other:
        return "both"
    return LOCK if by_lock else other if by_other else None


class Acting:
    """Per key, when each process acted as holder, and when two acted at once."""

    def __init__(self, ops: Iterable[Op], key: Callable[[Any], Hashable] = exact) -> None:
        self._key = key
        events: dict[tuple[Any, Hashable], list[tuple[int, int, bool]]] = {}
        for op in ops:
            f = op.f
            if f == "acquire":
                if op.type != "ok":
                    continue
            elif f != "release" or op.type != "invoke":
                continue
            p = op.process
            if p == NEMESIS:
                continue
            events.setdefault((p, key(op.key)), []).append((op.time, op.index, f == "acquire"))
        #: (process, key) -> its acting intervals, in time order; starts apart for bisect
        self.spans: dict[tuple[Any, Hashable], list[tuple[int, int]]] = {}
        self._starts: dict[tuple[Any, Hashable], list[int]] = {}
        per_key: dict[Hashable, list[tuple[int, int, Any]]] = {}
        for (p, k), evs in events.items():
            evs.sort()
            spans: list[tuple[int, int]] = []
            start: int | None = None
            for t, _i, acquire in evs:
                if acquire:
                    if start is None:  # an acquire while acting: the same owner, acting on
                        start = t
                elif start is not None:
                    spans.append((start, t))
                    start = None
            if start is not None:
                spans.append((start, FOREVER))
            self.spans[(p, k)] = spans
            self._starts[(p, k)] = [s for s, _ in spans]
            per_key.setdefault(k, []).extend((s, e, p) for s, e in spans)
        self.locked = bool(per_key)
        #: key -> the windows (start, end) in which two clients acted at once, by start
        self.at_once: dict[Hashable, list[tuple[int, int]]] = {}
        for k, spans3 in per_key.items():
            spans3.sort(key=_first)
            windows: list[tuple[int, int]] = []
            # the latest end so far and its process, and the latest end of any other process:
            # enough to know, for any process, the latest end among the others
            best, best_p, second = -FOREVER, _NOBODY, -FOREVER
            for s, e, p in spans3:
                other = second if p == best_p else best
                if s <= other:
                    windows.append((s, min(e, other)))
                if p == best_p:
                    best = max(best, e)
                elif e > best:
                    best, best_p, second = e, p, best
                else:
                    second = max(second, e)
            if windows:
                self.at_once[k] = windows
        self._reach: dict[Hashable, list[int]] = {}  # key -> latest window end up to each one

    def hold_start(self, process: Any, key: Hashable, t: int) -> int | None:
        """The start of ``process``'s acting interval on ``key`` that covers time ``t``."""
        starts = self._starts.get((process, key))
        if not starts:
            return None
        i = bisect_right(starts, t) - 1
        if i < 0:
            return None
        s, e = self.spans[(process, key)][i]
        return s if t <= e else None

    def taint(self, key: Hashable) -> None:
        """Every moment of ``key`` is suspect (a write made without the lock)."""
        self.at_once[key] = [ALWAYS]
        self._reach.pop(key, None)

    def broken(self, key: Hashable, t0: int, t1: int) -> bool:
        """Did two clients act at once on ``key`` at some moment in [t0, t1]?"""
        windows = self.at_once.get(key)
        if not windows:
            return False
        reach = self._reach.get(key)
        if reach is None:
            reach, hi = [], -FOREVER
            for _s, e in windows:
                hi = max(hi, e)
                reach.append(hi)
            self._reach[key] = reach
        # the windows starting by t1; the latest end among them must reach t0
        i = bisect_right(windows, (t1, FOREVER)) - 1
        return i >= 0 and reach[i] >= t0
