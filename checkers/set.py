"""Lost updates: Jepsen's set checker over ``add`` ops and each key's final ``read``.

Ops (Jepsen's format): ``{"f": "add", "type": "invoke"|"ok"|"fail"|"info", "process", "key",
"value": element}`` and ``{"f": "read", "type": "ok", "key", "value": [elements...]}``. Elements
are unique per add. The *final read* of a key is its latest ``ok`` read (by time, then index).

Per key, against its final read:

- ``lost``: acknowledged (``ok``) adds missing from it;
- ``unexpected``: elements in it that no add (of any outcome) ever attempted;
- ``duplicated``: elements it holds more than once;
- ``recovered``: unknown-outcome adds (``info``, or an invoke never completed) present in it.

Whose fault each lost update is (``blame``: "lock", "store", "both"; ``lost_by_lock``,
``lost_by_store``; each example's ``blame``), by ``checkers.blame``'s rule: the lock's when two
clients acted as holder of its key at once at any moment from the start of the lost add's hold to
the final read (a concurrent or stale writer), or when a write of that key was made without the
lock; otherwise the store's (it lost acknowledged writes, e.g. persistence off under kill). A
history with no ``ok`` acquire leaves blame undecided (None). ``excuse`` turns a loss that is the
store's alone into unknown when that store ran with a setting the run declared non-durable: the
harness's setup lost the writes, not the lock.

Invalid when anything is lost, unexpected or duplicated. Unknown (never valid) when a key with
adds has no final read, when an acknowledged add that is missing completed only after the final
read began (the read may legitimately not see it), or when an add reported ``fail`` (certainly
not done) is present: the history then contradicts itself, which says nothing about the lock.
No add and no read at all: not applicable (None).

No sort of the ops: adds are matched to their completions by (key, element) in one pass, reads to their
invocations by ``checkers.pairing``, so a million ops check in about a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .blame import Acting, blame_word
from .history import NEMESIS, Exact, Op, exact
from .pairing import pair
from .results import SetCounts, SetResult, Valid

NAME = "set"
MAX_EXAMPLES = 100

# An add is a small list: [invoke time, outcome, completion time, process].
T_INV, OUTCOME, T_DONE, PROC = range(4)
_RANK = {"ok": 3, "info": 2, "fail": 1}  # several adds of one element: the strongest outcome wins


def count_text(n: int) -> str:
    return f"{n:,}"


def percent(part: int, whole: int) -> str:
    """1.4%, 50%, 0.0001%: enough digits to be non-zero, no trailing zeros."""
    p = 100 * part / whole
    text = f"{p:.1f}" if p >= 1 else f"{p:.2g}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


@dataclass(slots=True)
class SetFigures:
    """What ``figures`` found: counts, capped examples, and what the verdict may doubt."""

    acked: int = 0  # acknowledged adds
    attempted: int = 0  # elements any add attempted
    unknown_adds: int = 0  # adds of unknown outcome
    n: Counter[str] = field(default_factory=Counter)  # lost, unexpected, duplicated, late ...
    keys: int = 0
    no_final: list[Any] = field(default_factory=list)  # keys with adds and no final read
    locked: bool = False  # an ok acquire: a lock to blame or clear (checkers.blame)
    lost: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    duplicated: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def blame(self) -> str | None:
        if not self.locked:
            return None
        return blame_word(self.n["lost_by_lock"], self.n["lost_by_store"], "store")


def check(ops: Iterable[Op], **_: Any) -> SetResult:
    fig = figures(ops)
    if not fig.keys:
        return {
            "checker": NAME,
            "valid": None,
            "summary": "no add or read ops: not a set history",
            **_counts(fig),
            "notes": fig.notes,
        }
    doubts = doubts_of(fig)
    valid = verdict(fig, doubts)
    locked, n = fig.locked, fig.n
    return {
        "checker": NAME,
        "valid": valid,
        "summary": describe(fig, valid, doubts),
        **_counts(fig),
        "blame": fig.blame,
        "lost_by_lock": n["lost_by_lock"] if locked else None,
        "lost_by_store": n["lost_by_store"] if locked else None,
        "keys": fig.keys,
        "keys_without_final_read": [str(k) for k in fig.no_final[:MAX_EXAMPLES]],
        "lost": fig.lost,  # type: ignore[typeddict-item]
        "unexpected": fig.unexpected,
        "duplicated": fig.duplicated,
        "recovered": fig.recovered,
        "unknown_because": doubts,
        "notes": fig.notes,
    }


def figures(ops: Iterable[Op]) -> SetFigures:
    """Every figure of a set history (pure: the ops are only read)."""
    ops = ops if isinstance(ops, list) else list(ops)  # read again for the holds, on a loss
    fig = SetFigures()
    adds: dict[Any, dict[Any, list[Any]]] = {}  # key -> element -> add
    finals: dict[Any, tuple[int, int, int, Any]] = {}  # key -> (time, index, invoke time, value)
    bad_reads = 0
    reads: list[Op] = []  # a few: their pairing need not sweep every op again
    locked = False
    for op in ops:
        f = op.f
        if f != "add":
            if f == "read":
                reads.append(op)
            elif f == "acquire" and not locked:
                locked = op.type == "ok" and op.process != NEMESIS
            continue
        if op.process == NEMESIS:
            continue
        # Keys and elements compare as JSON values (checkers.history.Exact): 1, 1.0 and true
        # are three elements. The reader made keys exact already; strings and ints need nothing.
        key = op.key
        tk = type(key)
        if tk is not str and tk is not int and tk is not Exact and key is not None:
            key = Exact(key)
        per = adds.get(key)
        if per is None:
            per = adds[key] = {}
        el = op.value
        tv = type(el)
        if tv is not int and tv is not str and tv is not Exact and el is not None:
            el = Exact(el)
        a = per.get(el)
        t = op.type
        if t == "invoke":
            if a is None:
                per[el] = [op.time, None, None, op.process]
            continue
        if a is None:  # a completion without its invocation: attempted by then
            per[el] = [op.time, t, op.time, op.process]
        elif a[OUTCOME] is None or _RANK[t] > _RANK[a[OUTCOME]]:
            a[OUTCOME] = t
            a[T_DONE] = op.time
    fig.locked = locked
    # Reads are paired with their invocations as every checker pairs them (checkers.pairing);
    # a read with no invocation is taken as invoked when it returned.
    for p, _f, key, t, inv, pos in pair(reads).pairs:
        if t != "ok":
            continue
        op = reads[pos]
        if not isinstance(op.value, list):
            bad_reads += 1
            continue
        iop = reads[inv] if inv >= 0 else None
        real = iop is not None and iop.type == "invoke" and iop.process == p
        start = iop.time if iop is not None and real else op.time
        key = exact(key)
        cur = finals.get(key)
        if cur is None or (op.time, op.index) > (cur[0], cur[1]):
            finals[key] = (op.time, op.index, start, op.value)
    if bad_reads:
        fig.notes.append(f"{bad_reads} ok read(s) without a list value were ignored")

    acting: Acting | None = None  # the holds, swept only when an update was lost
    n = fig.n
    lost, unexpected, duplicated, recovered = (
        fig.lost,
        fig.unexpected,
        fig.duplicated,
        fig.recovered,
    )
    acked = attempted = unknown_adds = 0
    # keys in the order the history met them (a set's order would change with the process's
    # string hashing, and with it which examples a report lists)
    all_keys = [*adds, *(k for k in finals if k not in adds)]
    for key in all_keys:
        per = adds.get(key, {})
        attempted += len(per)
        fin = finals.get(key)
        key_acked = 0
        for a in per.values():
            if a[OUTCOME] == "ok":
                key_acked += 1
            elif a[OUTCOME] != "fail":
                unknown_adds += 1
        acked += key_acked
        if fin is None:
            if per:
                fig.no_final.append(key)
            continue
        _, _, read_start, value = fin
        counts = Counter(map(exact, value))
        for el, c in counts.items():
            a = per.get(el)
            if c > 1:
                n["duplicated"] += 1
                if len(duplicated) < MAX_EXAMPLES:
                    duplicated.append({"key": key, "element": el, "times_read": c})
            if a is None:
                n["unexpected"] += 1
                if len(unexpected) < MAX_EXAMPLES:
                    unexpected.append({"key": key, "element": el})
            elif a[OUTCOME] == "fail":
                n["failed_present"] += 1
            elif a[OUTCOME] != "ok":
                n["recovered"] += 1
                if len(recovered) < MAX_EXAMPLES:
                    recovered.append({"key": key, "element": el, "invoke_time": a[T_INV]})
        tainted: bool | None = None  # known once a loss on this key needs it
        for el, a in per.items():
            if a[OUTCOME] != "ok" or el in counts:
                continue
            if a[T_DONE] >= read_start:  # acknowledged while the final read ran
                n["late"] += 1
                continue
            n["lost"] += 1
            whose = None
            if locked:
                if acting is None:
                    acting = Acting(ops, exact)
                if tainted is None:
                    tainted = _written_without_lock(acting, key, per)
                    if tainted:
                        acting.taint(key)
                held = acting.hold_start(a[PROC], key, a[T_INV])
                held = a[T_INV] if held is None else held
                whose = "lock" if acting.broken(key, held, read_start) else "store"
                n[f"lost_by_{whose}"] += 1
            if len(lost) < MAX_EXAMPLES:
                lost.append(
                    {
                        "key": key,
                        "element": el,
                        "process": a[PROC],
                        "invoke_time": a[T_INV],
                        "ok_time": a[T_DONE],
                    }
                    | ({"blame": whose} if whose else {})
                )
    lost.sort(key=lambda d: d["invoke_time"])
    fig.acked, fig.attempted, fig.unknown_adds, fig.keys = (
        acked,
        attempted,
        unknown_adds,
        len(all_keys),
    )
    return fig


def doubts_of(fig: SetFigures) -> list[str]:
    """Why the figures cannot vouch for the history (``unknown_because``)."""
    n = fig.n
    doubts: list[str] = []
    if fig.no_final:
        k = len(fig.no_final)
        doubts.append(f"no final read of {k} key{'s' * (k != 1)} with adds")
    if n["late"]:
        doubts.append(f"{n['late']} missing add(s) were acknowledged only while the final read ran")
    if n["failed_present"]:
        doubts.append(
            f"{n['failed_present']} add(s) reported failed were read back (the history contradicts"
            " itself)"
        )
    return doubts


def verdict(fig: SetFigures, doubts: list[str]) -> Valid:
    """Invalid when anything is lost, unexpected or duplicated; else unknown when in doubt."""
    n = fig.n
    if n["lost"] or n["unexpected"] or n["duplicated"]:
        return False
    return "unknown" if doubts else True


def describe(fig: SetFigures, valid: Valid, doubts: list[str]) -> str:
    """The summary: what went wrong (or that nothing did), then the doubts; the doubts first
    when they make the verdict."""
    n, acked = fig.n, fig.acked
    nlost, nunex, ndup = n["lost"], n["unexpected"], n["duplicated"]
    parts: list[str] = []
    if nlost:
        parts.append(
            f"{count_text(nlost)} of {count_text(acked)} acknowledged updates were lost"
            f" ({percent(nlost, acked)}){_whose(fig.blame, n)}"
        )
    if nunex:
        parts.append(f"{count_text(nunex)} element{'s' * (nunex != 1)} read that no add wrote")
    if ndup:
        parts.append(f"{count_text(ndup)} element{'s' * (ndup != 1)} read more than once")
    if valid is True:
        parts.append(
            f"all {count_text(acked)} acknowledged updates were in the final reads"
            if acked
            else "no acknowledged update to look for"
        )
    if n["recovered"]:
        parts.append(
            f"{count_text(n['recovered'])} of {count_text(fig.unknown_adds)} unknown-outcome"
            " updates were present"
        )
    return "; ".join(parts + doubts) if valid != "unknown" else "; ".join(doubts + parts)


def _counts(fig: SetFigures) -> SetCounts:
    n = fig.n
    return {
        "attempted_count": fig.attempted,
        "acknowledged_count": fig.acked,
        "unknown_outcome_count": fig.unknown_adds,
        "lost_count": n["lost"],
        "unexpected_count": n["unexpected"],
        "duplicated_count": n["duplicated"],
        "recovered_count": n["recovered"],
        "failed_present_count": n["failed_present"],
        "acknowledged_during_final_read_count": n["late"],
    }


LOCK_AT_ONCE = "two clients acting as holder at once (the lock's fault)"
STORE_LOST = "with no two clients acting as holder at once (the store lost them)"


def _whose(blame: str | None, n: Counter[str]) -> str:
    """The summary's word on whose fault the lost updates are."""
    if blame == "lock":
        return f", {LOCK_AT_ONCE}"
    if blame == "store":
        return f" {STORE_LOST}"
    if blame == "both":
        return (
            f": {count_text(n['lost_by_lock'])} with {LOCK_AT_ONCE}, "
            f"{count_text(n['lost_by_store'])} {STORE_LOST}"
        )
    return ""


def _written_without_lock(acting: Acting, key: Any, per: dict[Any, list[Any]]) -> bool:
    """Was some add of ``key`` (not certainly failed) made by a process holding no lock on it?"""
    return any(
        a[OUTCOME] != "fail" and acting.hold_start(a[PROC], key, a[T_INV]) is None
        for a in per.values()
    )


def excuse(result: SetResult, setting: str | None) -> SetResult:
    """A set result whose only failure is updates the store lost by itself (``blame`` "store"),
    when the store holding the set ran with ``setting``, which the run declared non-durable
    (e.g. "redis persistence=off ..."): unknown, not invalid. The harness's own setup lost
    them while the lock kept its promise, so the run says nothing about the lock. Anything else
    is returned as it is. Changes ``result`` in place and returns it."""
    if (
        not setting
        or result.get("valid") is not False
        or result.get("blame") != "store"
        or result.get("unexpected_count")
        or result.get("duplicated_count")
    ):
        return result
    reason = (
        f"the store lost acknowledged writes under a non-durable setting, {setting}: "
        "not the lock's fault"
    )
    result["valid"] = "unknown"
    result["non_durable"] = setting
    result["unknown_because"] = [reason, *result.get("unknown_because", [])]
    result["summary"] = f"unknown ({reason}); {result['summary']}"
    return result
