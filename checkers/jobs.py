"""At-most-once scheduled jobs (ShedLock's use case): did any slot run twice, or not at all?

Every ``period`` ms a job is due; its *slot* is ``floor(time_ms / period)``. A client that takes
the job's lock records an ``exec`` op: ``invoke`` when the job body starts, then ``ok`` (done),
``fail`` (the job raised) or ``info`` (unknown: the client was cut off), both with value
``{"slot": int, "period": ms}``. Every invoked exec counts as an execution, whatever its
completion: the job body started, so its side effects may have happened. A completion without an
invocation counts too, starting ``value["duration"]`` ms before it (or at it). A slot is an
integer exactly: an execution whose slot is ``3.0``, ``"3"`` or missing is unreadable, and makes
the result unknown (it may have run a slot twice), never valid.

- ``double_executions``: slots executed more than once (the damage; any makes the run invalid);
- ``missed_slots``: slots due while clients ran that nobody executed (availability, reported,
  never invalid);
- overlap: executions that ran while an earlier one still ran, and for how long in total.

Whose fault each slot run more than once is (``blame``: "lock", "scheduler", "both";
``double_by_lock``, ``double_by_scheduler``; each double slot's ``blame``), by
``checkers.blame``'s rule: the lock's when two clients acted as holder of the job's key at once
at any moment from the start of the hold of the slot's first execution to the end of its last, or
when one of its executions ran outside a hold of its process; otherwise the scheduler's: the lock
kept mutual exclusion and the slot was run again after its lock was released (lockAtLeastFor
shorter than the nodes' skew, a fixed-rate timer catching up). A double execution that is the
scheduler's alone makes the result unknown, not invalid: the scheduler and its timing are the
test's setup, and the lock kept its promise. A history with no ``ok`` acquire leaves blame
undecided (None) and any double execution invalid.

The period comes from the exec ops' values (``period_ms=`` overrides it). Due slots are those
whose whole interval lies within the span of the history's client ops, on the history's own clock
(``time`` in ns), the clock the workload computes slots with. When no executed slot falls on that
clock (slots from another tool's wall clock) or no period is known, the due slots are taken to be
those between the first and the last executed slot, and a note says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .blame import FOREVER, Acting, blame_word
from .history import NEMESIS, Op, exact
from .pairing import NEVER_RETURNED, pair
from .results import JobsResult, Valid
from .set import count_text

NAME = "jobs"
MAX_EXAMPLES = 100
MS = 1_000_000  # ns
EXEC_FS = frozenset(("exec",))


def _slot_of(value: Any) -> int | None:
    """The slot, an integer exactly: ``3.0``, ``"3"`` or ``true`` name no slot (JSON values
    compare with their types), so such an exec is unreadable, never merged with slot 3."""
    if type(value) is dict:
        s = value.get("slot")
        if type(s) is int:
            return s
    return None


def _num(value: Any, name: str) -> float | None:
    if isinstance(value, dict):
        v = value.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


@dataclass(slots=True)
class JobsFigures:
    """What ``figures`` found: executions, slots, overlap and blame."""

    execs: list[list[Any]]  # [slot, start ns, end ns or None, process, key], as recorded
    unreadable: int  # executions whose slot cannot be read
    notes: list[str]
    period: float | None = None
    per_slot: Counter[int] = field(default_factory=Counter)  # slot -> executions
    due: range = range(0)
    missed: list[int] = field(default_factory=list)
    doubles: list[int] = field(default_factory=list)  # slots executed more than once
    overlapping: int = 0  # executions that started while an earlier one ran
    overlap_ns: int = 0
    by_slot: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # capped examples
    locked: bool = False  # an ok acquire: a lock to blame or clear
    whose: dict[int, str] = field(default_factory=dict)  # double slot -> "lock" | "scheduler"

    @property
    def by_lock(self) -> int:
        return sum(1 for w in self.whose.values() if w == "lock")

    @property
    def blame(self) -> str | None:
        return blame_word(self.by_lock, len(self.whose) - self.by_lock, "scheduler")

    @property
    def extra(self) -> int:
        """Executions beyond the first of their slot."""
        return sum(self.per_slot[s] for s in self.doubles) - len(self.doubles)


def check(ops: Iterable[Op], *, period_ms: float | None = None, **_: Any) -> JobsResult:
    fig = figures(ops, period_ms=period_ms)
    # An exec whose slot cannot be read may have run a slot twice: never valid with one.
    doubt = (
        f"{fig.unreadable} execution(s) without an integer value['slot']: which slot they ran"
        " is unknown"
        if fig.unreadable
        else ""
    )
    if not fig.execs:
        return {
            "checker": NAME,
            "valid": "unknown" if doubt else None,
            "summary": doubt or "no exec ops: not a jobs history",
            "unknown_because": [doubt] if doubt else [],
            "executions": 0,
            "double_executions": 0,
            "missed_slots": 0,
            "notes": fig.notes,
        }
    valid, because = verdict(fig, doubt)
    nd, by_lock, locked = len(fig.doubles), fig.by_lock, fig.locked
    by_slot, whose = fig.by_slot, fig.whose
    return {
        "checker": NAME,
        "valid": valid,
        "summary": describe(fig, valid, doubt),
        "unknown_because": because,
        "unreadable_execs": fig.unreadable,
        "period_ms": fig.period,
        "executions": len(fig.execs),
        "executed_slots": len(fig.per_slot),
        "due_slots": len(fig.due),
        "double_executions": nd,
        "extra_executions": fig.extra,
        "blame": fig.blame,
        "double_by_lock": by_lock if locked else None,
        "double_by_scheduler": len(whose) - by_lock if locked else None,
        "missed_slots": len(fig.missed),
        "overlapping_executions": fig.overlapping,
        "overlap_ms": round(fig.overlap_ns / MS, 3),
        "double_slots": [
            {"slot": s, "executions": by_slot[s]} | ({"blame": whose[s]} if s in whose else {})  # type: ignore[misc]
            for s in fig.doubles
            if s in by_slot
        ],
        "missed": fig.missed[:MAX_EXAMPLES],
        "notes": fig.notes,
    }


def figures(ops: Iterable[Op], *, period_ms: float | None = None) -> JobsFigures:
    """Every figure of a jobs history (pure: the ops are only read)."""
    ops = ops if isinstance(ops, list) else list(ops)
    execs: list[list[Any]] = []  # [slot, start ns, end ns or None, process, key]
    periods: Counter[float] = Counter()
    t_first: int | None = None
    t_last: int | None = None
    unreadable = 0
    for op in ops:
        if op.process == NEMESIS:
            continue
        t = op.time
        if t_first is None or t < t_first:
            t_first = t
        if t_last is None or t > t_last:
            t_last = t
        if op.f == "exec":
            p = _num(op.value, "period")
            if p is not None:
                periods[p] += 1
    # Invocations and completions paired as every checker pairs them (checkers.pairing); each
    # execution is kept at the position where it was recorded (its invocation, else its
    # completion), the order the overlap sweep breaks ties in.
    at: list[int] = []
    for proc, _f, key, _t, inv, pos in pair(ops, EXEC_FS).pairs:
        key = exact(key)
        iop = ops[inv] if inv >= 0 else None
        done = ops[pos] if pos != NEVER_RETURNED else None
        bad = 0
        if iop is not None and iop.type == "invoke" and iop.process == proc:
            slot = _slot_of(iop.value)
            if slot is not None:
                execs.append([slot, iop.time, None if done is None else done.time, proc, key])
                at.append(inv)
                continue
            bad = 1  # its completion, if any, may still say which slot
        if done is None:
            unreadable += bad
            continue
        slot = _slot_of(done.value)
        if slot is None:
            unreadable += 1
            continue
        dur = _num(done.value, "duration")
        start = done.time - int(dur * MS) if dur else done.time
        execs.append([slot, start, done.time, proc, key])
        at.append(pos)
    execs = [e for _, e in sorted(zip(at, execs, strict=True), key=lambda x: x[0])]

    notes: list[str] = []
    if len(periods) > 1:
        notes.append(
            f"exec ops disagree on the period: {sorted(periods)} ms; the commonest is used"
        )
    fig = JobsFigures(execs, unreadable, notes)
    if not execs:
        return fig
    period = fig.period = period_ms or (periods.most_common(1)[0][0] if periods else None)

    per_slot = fig.per_slot = Counter(e[0] for e in execs)
    executed = per_slot.keys()
    due: range | None = None
    if period and t_first is not None and t_last is not None:
        pns = period * MS
        lo = int(-(-t_first // pns))  # first slot starting at or after the first op
        hi = int(t_last // pns) - 1  # last slot ending at or before the last op
        due = range(lo, hi + 1)
        if not any(s in due for s in executed):
            notes.append(
                "no executed slot lies on the history's clock: due slots taken as those "
                "between the first and last executed slot"
            )
            due = None
    elif not period:
        notes.append(
            "no period known: due slots taken as those between the first and last executed slot"
        )
    if due is None:
        due = range(min(executed), max(executed) + 1)
    fig.due = due
    fig.missed = [s for s in due if s not in per_slot]
    doubles = fig.doubles = sorted(s for s, c in per_slot.items() if c > 1)

    # Overlap: sweep executions by start, against the latest end seen so far.
    end_of_history = t_last if t_last is not None else 0
    reach: int | None = None
    for e in sorted(execs, key=lambda e: e[1]):
        end = e[2] if e[2] is not None else end_of_history
        if reach is not None and e[1] < reach:
            fig.overlapping += 1
            fig.overlap_ns += min(end, reach) - e[1]
        reach = end if reach is None else max(reach, end)

    by_slot = fig.by_slot
    runs: dict[int, list[list[Any]]] = {}  # double slot -> its executions
    for e in execs:
        if per_slot[e[0]] > 1:
            runs.setdefault(e[0], []).append(e)
            if e[0] in by_slot or len(by_slot) < MAX_EXAMPLES:
                by_slot.setdefault(e[0], []).append({"process": e[3], "start": e[1], "end": e[2]})
    # an ok acquire: a lock to blame or clear (found early in a lock history)
    fig.locked = any(op.f == "acquire" and op.type == "ok" and op.process != NEMESIS for op in ops)
    if fig.locked and doubles:  # the holds, swept only when a slot ran twice
        acting = Acting(ops)
        fig.whose = {s: _whose_slot(acting, runs[s]) for s in doubles}
    return fig


def verdict(fig: JobsFigures, doubt: str) -> tuple[Valid, list[str]]:
    """Invalid when a slot ran twice by the lock's fault; unknown when only the scheduler ran
    slots again, or some execution's slot cannot be read; and why (``unknown_because``)."""
    valid: Valid = not fig.doubles
    because = [doubt] if doubt else []
    if fig.blame == "scheduler":
        valid = "unknown"
        because.insert(0, SCHEDULER_REASON)  # the summary says it: "(the scheduler ran them ...)"
    if doubt and valid:
        valid = "unknown"
    return valid, because


def describe(fig: JobsFigures, valid: Valid, doubt: str) -> str:
    """The summary: slots run more than once (and whose fault), missed, overlapping; the doubt
    first when it makes the verdict."""
    nd, nm, nslots = len(fig.doubles), len(fig.missed), len(fig.due)
    executed = len(fig.per_slot)
    by_lock = fig.by_lock
    parts = []
    if nd:
        parts.append(
            f"{count_text(nd)} of {count_text(executed)} executed slots ran more than once"
            f" ({count_text(fig.extra)} double executions)"
            + _said(fig.blame, by_lock, len(fig.whose) - by_lock)
        )
    else:
        parts.append(f"each of {count_text(executed)} executed slots ran once")
    parts.append(
        f"{count_text(nm)} of {count_text(nslots)} due slots never ran" if nm else "no slot missed"
    )
    if fig.overlapping:
        parts.append(
            f"{fig.overlapping} executions overlapped another ({fig.overlap_ns / MS:,.0f} ms)"
        )
    if doubt and valid is not False:
        parts.insert(0, doubt)
    elif doubt:
        parts.append(doubt)
    return "; ".join(parts)


SCHEDULER_REASON = (
    "every slot run more than once was run again while no two clients acted as holder at once: "
    "the scheduler's fault, not the lock's"
)
LOCK_AT_ONCE = "two clients acting as holder at once (the lock's fault)"
SCHEDULER_RAN = "with no two clients acting as holder at once (the scheduler ran them again)"


def _said(blame: str | None, by_lock: int, by_scheduler: int) -> str:
    """The summary's word on whose fault the double executions are."""
    if blame == "lock":
        return f", {LOCK_AT_ONCE}"
    if blame == "scheduler":
        return f" {SCHEDULER_RAN}"
    if blame == "both":
        return (
            f": {count_text(by_lock)} slots with {LOCK_AT_ONCE}, "
            f"{count_text(by_scheduler)} {SCHEDULER_RAN}"
        )
    return ""


def _whose_slot(acting: Acting, runs: list[list[Any]]) -> str:
    """ "lock" or "scheduler": a slot's executions [slot, start, end, process, key]."""
    t0, t1 = FOREVER, -FOREVER
    for _slot, start, end, proc, key in runs:
        held = acting.hold_start(proc, key, start)
        if held is None:  # run outside a hold of its process: the lock did not guard it
            return "lock"
        t0, t1 = min(t0, held), max(t1, FOREVER if end is None else end)
    keys = {e[4] for e in runs}
    return "lock" if any(acting.broken(k, t0, t1) for k in keys) else "scheduler"
