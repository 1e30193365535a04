"""Holds: the intervals during which a process certainly owned a lock, from one history sweep.

The owner-aware mutex (docs/design.md, "Checkers") reduces, for sequential processes, to
intervals measured in *event positions* of the history sorted by (time, index):

- a hold starts at the position of an ``ok`` acquire (its latest possible linearization point);
- it ends at the invocation of the process's first ``ok`` release of that key after it, or, when
  none came, its first ``info`` release (which may be taken to have happened); ``fail`` releases
  took no effect and end nothing; with no such release the hold never ends (``END == NEVER``);
- an ``ok`` acquire by a process whose earlier hold of that key never ended (its release failed
  or never came) gives the lock to its own holder again: that earlier hold lasts until the new
  one ends (ownership never passed to anyone else), and the two are one owner, not two holders;
- ``fail`` and ``info`` acquires are dropped;
- an ``ok`` release by a process with no hold left to end is a release by a non-owner.

Positions instead of raw times make ties exact: two events at one nanosecond are ordered by index,
and the real-time order of two ops is "completion position < invocation position".

Histories from other tools may break our contract; we stay conservative (never report what some
linearization could explain) and note what we saw in ``notes``:

- a process acting again after an ``info`` op: its ``info`` acquire may have taken effect, so a
  later ``ok`` release by it is not called a non-owner release (the possible hold is left out of
  overlap checks, which can only hide violations, never invent them);
- an ``info`` release followed by an ``ok`` release of the same hold: the ``info`` one is taken
  not to have happened (otherwise the ``ok`` one would be a non-owner release);
- invocations and completions are paired by ``checkers.pairing`` (a new invocation while one
  was pending makes the pending one ``info``; a completion with no invocation is taken as
  invoked right after the process's previous event).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .history import Op
from .pairing import ANOMALIES, Paired, iter_pairs
from .results import Hold

ACQUIRE = "acquire"
RELEASE = "release"
RENEW = "renew"
LOCK_FS = frozenset((ACQUIRE, RELEASE, RENEW))
NEVER = sys.maxsize  # END of a hold that never ended

# A hold is a plain list (fast to build by the million); these name its slots.
# RENEWED: the invocation position of the hold's latest ok renew (-1: none), which extends the
# earliest moment its lease can run out (checkers.model). STOP: the invocation position of the
# hold's first release, whatever its outcome: its holder acts as holder no longer (-1: never
# invoked); REL_INV is that of the release that ended it, which may come later (a refused
# release, then one whose outcome is unknown).
KEY, PROC, START, END, FENCE, REL, ACQ_INV, REL_INV, REL_DONE, RENEWED, STOP = range(11)

_index = attrgetter("index")
_time = attrgetter("time")


def sort_ops(ops: Iterable[Op]) -> list[Op]:
    """The ops in (time, index) order: index order and time order can disagree.

    Two stable sorts on plain ints (index, then time) are much faster than one on tuples, and
    nearly free on the nearly sorted histories we record.
    """
    srt = sorted(ops, key=_index)
    srt.sort(key=_time)
    return srt


@dataclass
class Holds:
    """What one sweep found. ``ops`` is the sorted history that all positions refer to."""

    ops: list[Op]
    holds: list[list[Any]] = field(default_factory=list)
    by_key: dict[Any, list[list[Any]]] = field(default_factory=dict)
    # (key, process, release invoke position, release ok position, latest hold on key or None)
    bad_releases: list[tuple[Any, Any, int, int, list[Any] | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def extract(ops: Iterable[Op] | Sequence[Op], *, presorted: bool = False) -> Holds:
    """Sweep the history once and return its holds per key, in start order."""
    # A million small hold lists would wake the cyclic GC hundreds of times for nothing (they
    # hold no cycles): pausing it cuts about a third of the time on large histories.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _extract(list(ops) if presorted else sort_ops(ops))
    finally:
        if paused:
            gc.enable()


def _extract(srt: list[Op]) -> Holds:
    res = Holds(srt)
    holds = res.holds
    by_key = res.by_key
    last: dict[Any, list[Any]] = {}  # (process, key) -> that process's latest hold on key
    maybe: set[tuple[Any, Any]] = set()  # (process, key) with an info acquire since
    regranted: list[tuple[list[Any], list[Any]]] = []  # (unended hold, its holder's next hold)
    anomalies = dict.fromkeys(ANOMALIES, 0)
    # Completions in the order the sweep settles them; ok acquires and ok releases (nearly all
    # of them) are handled first and inline.
    for p, f, key, t, inv, pos in iter_pairs(srt, LOCK_FS, anomalies):
        if f == RENEW:  # only an ok renew of a hold not yet let go extends its lease
            if t == "ok":
                h = last.get((p, key))
                if h is not None and h[REL] is None and h[STOP] < 0:
                    h[RENEWED] = inv
            continue
        if t == "ok":
            if f == ACQUIRE:
                h = [key, p, pos, NEVER, srt[pos].value, None, inv, -1, -1, -1, -1]
                holds.append(h)
                lst = by_key.get(key)
                if lst is None:
                    by_key[key] = [h]
                else:
                    lst.append(h)
                hk = (p, key)
                prev = last.get(hk)
                if prev is not None and prev[END] == NEVER:
                    regranted.append((prev, h))
                last[hk] = h
                if maybe:
                    maybe.discard(hk)
                continue
            hk = (p, key)
            h = last.get(hk)
            if h is not None and h[REL] != "ok":
                h[END], h[REL], h[REL_INV], h[REL_DONE] = inv, "ok", inv, pos
                if h[STOP] < 0:
                    h[STOP] = inv
            elif hk in maybe:
                maybe.discard(hk)  # its info acquire may have happened: conservative
            else:
                cur = by_key.get(key)
                res.bad_releases.append((key, p, inv, pos, cur[-1] if cur else None))
            continue
        if f == ACQUIRE:
            if t == "info":
                maybe.add((p, key))
            continue
        h = last.get((p, key))
        if h is None:
            continue
        if h[STOP] < 0:
            h[STOP] = inv
        rel = h[REL]
        if t == "info":
            if rel is None or rel == "fail":
                h[END], h[REL], h[REL_INV], h[REL_DONE] = inv, "info", inv, pos
        elif rel is None:  # fail: no effect, but remember it for the report
            h[REL], h[REL_INV], h[REL_DONE] = "fail", inv, pos
    for prev, h in reversed(regranted):  # latest first, so a chain takes its last end
        prev[END] = h[END]
    res.notes.extend(Paired([], anomalies).notes())
    return res


def hold_dict(h: list[Any], ops: list[Op]) -> Hold:
    """The report form of a hold: times in ns, op indexes as recorded."""
    end = h[END]
    return {
        "key": h[KEY],
        "process": h[PROC],
        "start": ops[h[START]].time,
        "end": None if end == NEVER else ops[end].time,
        "fence": h[FENCE],
        "release": h[REL],
        "acquire_index": ops[h[START]].index,
        "release_index": ops[h[REL_INV]].index if h[REL_INV] >= 0 else None,
    }


def hold_positions(h: list[Any]) -> list[int]:
    """Positions of the ops that make up a hold: acquire invoke/ok, release invoke/done."""
    return [x for x in (h[ACQ_INV], h[START], h[REL_INV], h[REL_DONE]) if x >= 0]
