"""Pairing invocations with completions: the one definition every checker shares.

Processes are sequential (Jepsen's model), so a process's completion belongs to its pending
invocation. Histories from other tools may break that contract; the rules below stay
conservative (an op whose outcome is in doubt is ``info``: it may or may not have happened):

- a new invocation while the process still had one pending: the pending one completes as
  ``info`` (never returned), counted as "invoked while pending";
- a completion with no matching invocation (none pending, or one of another ``f``): it is taken
  as invoked right after the process's previous event (position + 1; -1 when it had none), and
  a pending op of another ``f`` completes as ``info``; counted as "no invocation";
- an invocation by a process after one of its ops completed as ``info``: counted as "acted after
  info" (a process should be retired after an unknown outcome);
- an invocation never completed by the end of the history completes as ``info``;
- a completion's key names the op's lock when its invocation named none (the history reader
  refuses a completion whose key disagrees with its invocation's).

``pair`` returns the completions in the order the sweep settles them (a synthesized ``info``
at the moment it becomes certain), which is the order a checker that replays the history in
time must see them in.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from typing import Any, NamedTuple

from .history import NEMESIS, Op

NEVER_RETURNED = -1  # ``pos`` of a completion synthesized for an op that never returned


# One completion, a plain tuple (built by the million: a NamedTuple costs twice as much):
# (process, f, key, type, inv, pos) where key comes from the invocation (from the completion
# when there was none), type is ok | fail | info, inv is the position of the invocation in the
# sorted history (-1 when unknown) and pos that of the completion (NEVER_RETURNED when
# synthesized).
Pair = tuple[Any, str, Any, str, int, int]


class Paired(NamedTuple):
    pairs: list[Pair]
    anomalies: dict[str, int]

    def notes(self) -> list[str]:
        return [
            f"{n} x {what} (foreign history?): handled conservatively"
            for what, n in self.anomalies.items()
            if n
        ]


ANOMALIES = ("acted after info", "invoked while pending", "no invocation")


def pair(srt: Sequence[Op], fs: Container[str] | None = None) -> Paired:
    """Pair the ops of ``srt`` (sorted by time, index) whose ``f`` is in ``fs`` (all when None);
    the nemesis's ops are left out."""
    anomalies = dict.fromkeys(ANOMALIES, 0)
    return Paired(list(iter_pairs(srt, fs, anomalies)), anomalies)


def iter_pairs(
    srt: Sequence[Op], fs: Container[str] | None, anomalies: dict[str, int]
) -> Iterator[Pair]:
    """``pair`` one completion at a time (a sweep that builds as it goes keeps no list of
    them); ``anomalies`` is filled in as the sweep goes."""
    # process -> (f, key, position) while an invocation is in flight; the position of its latest
    # completion (a plain int: no allocation on the hot path) while the process is idle
    pending: dict[Any, Any] = {}
    infoed: set[Any] = set()  # processes whose latest completion was info
    for pos, op in enumerate(srt):
        f = op.f
        if fs is not None and f not in fs:
            continue
        p = op.process
        if type(p) is not int and p == NEMESIS:
            continue
        t = op.type
        pend = pending.get(p)
        if t == "invoke":
            if infoed and p in infoed:
                anomalies["acted after info"] += 1
                infoed.discard(p)
            if type(pend) is tuple:
                anomalies["invoked while pending"] += 1
                infoed.add(p)
                yield (p, pend[0], pend[1], "info", pend[2], NEVER_RETURNED)
            pending[p] = (f, op.key, pos)
            continue
        pending[p] = pos
        if t == "info":
            infoed.add(p)
        if type(pend) is tuple:
            if pend[0] == f:
                key = pend[1]  # a key given only on the completion names the op's lock
                yield (p, f, op.key if key is None else key, t, pend[2], pos)
                continue
            infoed.add(p)
            yield (p, pend[0], pend[1], "info", pend[2], NEVER_RETURNED)
            inv = pend[2] + 1
        else:
            inv = -1 if pend is None else pend + 1
        anomalies["no invocation"] += 1
        yield (p, f, op.key, t, inv, pos)
    for p, pend in pending.items():
        if type(pend) is tuple:
            f, key, inv = pend
            yield (p, f, key, "info", inv, NEVER_RETURNED)
