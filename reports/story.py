"""The story of each violation, told from the history in the user's words, with the times, and
what its zoomed timeline shows: both holders' lanes, the faults, the writes and fence tokens.

Nothing here re-checks: the violations come from the checkers (results.json); the history only
supplies what happened around them (faults, writes, releases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers.columns import OpsView
from checkers.history import NEMESIS, Op

from .faults import Period, affected_process, describe, overlapping
from .lock import Lock, began, facts, ms_text

WRITES = ("write", "add")  # ops that act on the protected resource under the lock
MAX_SCAN = 20_000  # ops looked at around one violation
MARGIN = 0.08  # share of the window shown before and after it


def secs(ns: int | float, digits: int = 2) -> str:
    return f"{ns / 1e9:.{digits}f} s"


def digits_for(span_ns: float) -> int:
    """Enough decimals to tell a violation's moments apart: 2 (10 ms) for a violation lasting
    half a second or more, down to 4 (0.1 ms) for one of a few ms."""
    return 2 if span_ns >= 5e8 else 3 if span_ns >= 5e7 else 4


@dataclass
class Mark:
    """A moment on a zoom lane: a write, a failed release, an acquire."""

    t: int
    label: str
    kind: str  # "write" | "stale" | "rejected" | "unknown" | "release-fail"
    title: str = ""


@dataclass
class Lane:
    label: str
    bars: list[tuple[int, int, bool, bool, str]] = field(default_factory=list)
    # (start, end, in the violation, open-ended, title)
    marks: list[Mark] = field(default_factory=list)


@dataclass
class Story:
    number: int
    kind: str
    key: Any
    text: str
    lo: int  # ns, the zoom window
    hi: int
    lanes: list[Lane]
    faults: list[Period]
    lines: list[tuple[int, str]]  # (t, label): dashed verticals, e.g. lease expiry
    who: str  # "client 0 / client 1"
    at: int  # ns, when the second holder acquired (or the bad release)


class OpLookup:
    """Ops by their recorded index, without a dict when the list is in index order."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = ops
        self._pos: dict[int, int] | None = None

    def pos(self, index: Any) -> int | None:
        if not isinstance(index, int):
            return None
        ops = self.ops
        if 0 <= index < len(ops) and ops[index].index == index:
            return index
        if self._pos is None:
            self._pos = {op.index: i for i, op in enumerate(ops)}
        return self._pos.get(index)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _fence(h: dict[str, Any]) -> str:
    f = h.get("fence")
    return f" (fence {f})" if f is not None else ""


def stories(
    violations: Sequence[dict[str, Any]],
    ops: Sequence[Op],
    faults: Sequence[Period],
    config: dict[str, Any],
    lock: Lock | None = None,
) -> list[Story]:
    """``lock``: what is known of the lock's leases (``reports.lock.facts``); from ``config``
    alone when not given."""
    look = OpLookup(ops)
    lock = lock if lock is not None else facts(config, {})
    out = []
    for n, v in enumerate(violations, 1):
        s = _story(n, v, look, faults, lock)
        if s is not None:
            out.append(s)
    return out


def _window_ops(
    look: OpLookup, holds: list[dict[str, Any]], extra: Sequence[dict[str, Any]] = ()
) -> tuple[list[Op], int, int]:
    """Ops recorded between the first acquire and the last release of ``holds`` (and the
    violation's own ops), with the time span they cover. Only the holds' processes' ops: the
    story reads no other (from columns, the others' ``Op`` are not even built: a window of a
    large run spans up to ``MAX_SCAN`` ops)."""
    idx = [
        h.get(f) for h in holds for f in ("acquire_index", "release_index") if h.get(f) is not None
    ]
    idx += [o.get("index") for o in extra if isinstance(o, dict)]
    pos = [p for p in (look.pos(i) for i in idx) if p is not None]
    times = [h[f] for h in holds for f in ("start", "end") if _num(h.get(f))]
    times += [o["time"] for o in extra if isinstance(o, dict) and _num(o.get("time"))]
    if not pos:
        return [], int(min(times, default=0)), int(max(times, default=0))
    a, b = min(pos), max(pos)
    b = min(b + 60, len(look.ops) - 1, a + MAX_SCAN)  # the release's completion and writes
    a = max(0, a - 20)
    procs = {h.get("process") for h in holds}
    if isinstance(look.ops, OpsView) and all(type(p) is int for p in procs):
        window = look.ops.of_processes(a, b + 1, procs)
    else:
        window = [op for op in look.ops[a : b + 1] if op.process in procs]
    times += [look.ops[p].time for p in pos]
    return window, int(min(times)), int(max(times))


def _completion(window: list[Op], i: int) -> Op | None:
    p = window[i].process
    for op in window[i + 1 :]:
        if op.process == p:
            return op if op.type != "invoke" else None
    return None


def _story(
    n: int, v: dict[str, Any], look: OpLookup, faults: Sequence[Period], lock: Lock
) -> Story | None:
    kind = str(v.get("kind", "unknown"))
    key = v.get("key")
    a = v.get("first") if isinstance(v.get("first"), dict) else None
    b = v.get("second") if isinstance(v.get("second"), dict) else None
    extra = [o for o in v.get("ops") or [] if isinstance(o, dict)]
    holds = [h for h in (a, b) if h is not None]
    window, lo, hi = _window_ops(look, holds, extra)
    if a is None and b is None and not extra:
        return None
    procs = [h.get("process") for h in holds]
    if kind == "release-by-non-owner":
        return _non_owner(n, v, a, window, lo, hi, faults, key)
    if a is None or b is None:
        return None
    pa, pb = a.get("process"), b.get("process")
    span = _span(look, a, b)
    digits = digits_for(span[1] - span[0])

    def at(ns: int | float) -> str:
        return secs(ns, digits)

    lines: list[tuple[int, str]] = []
    # (time, what, text): told in time order; "what" lets a resume and the write after it join
    events: list[tuple[int, str, str]] = [
        (
            a["start"],
            "acquire",
            f"client {pa} acquired lock `{key}` at {at(a['start'])}{_fence(a)}",
        )
    ]
    held_from, taken_at = a["start"], b["start"]
    for f in overlapping(faults, held_from, taken_at):
        if not f.injected:
            continue
        who = affected_process(f)
        if who is not None and who != pa:
            continue
        if who == pa:  # paused once the nemesis found it holding: when the start returned
            paused = f.in_force if f.in_force is not None else f.start
            events.append(
                (paused, "pause", f"the nemesis paused client {pa}'s process at {at(paused)}")
            )
            if f.end is not None:
                events.append((f.end, "resume", f"client {pa} resumed at {at(f.end)}"))
        elif f.start < held_from:
            events.append((held_from, "fault", f"a fault was in force: {describe(f)}"))
        else:
            events.append((f.start, "fault", f"at {at(f.start)} a fault began: {describe(f)}"))
    if lock.timed and lock.ttl_ms is not None and _num(a.get("start")):
        # only a lock with a TTL has a lease to tell of. It began between the acquire's
        # invocation and its ok: by the ok plus the TTL it had surely run out; from the
        # invocation plus the TTL on it could have
        ttl_ns = lock.ttl_ms * 1e6
        expiry = int(a["start"] + ttl_ns)
        sent = began(look.ops, a, taken_at)
        lease = f"client {pa}'s {ms_text(lock.ttl_ms)} lease"
        if expiry <= taken_at:
            events.append((expiry, "lease", f"{lease} expired by {at(expiry)}"))
            lines.append((expiry, "lease expired"))
        elif sent is not None and sent[0] + ttl_ns <= taken_at:
            earliest = int(sent[0] + ttl_ns)
            events.append(
                (
                    earliest,
                    "lease",
                    f"{lease} could run out from {at(earliest)} on ({sent[1]} was sent at "
                    f"{at(sent[0])})",
                )
            )
            lines.append((earliest, "lease could run out"))
    lanes = {p: Lane(f"client {p}") for p in procs}
    wrote_b = False
    stale_told = False
    release_a = None
    opened: dict[Any, tuple[int, Any]] = {}
    for i, op in enumerate(window):
        p = op.process
        if p == NEMESIS or p not in lanes or op.key != key:
            continue
        lane = lanes[p]
        if op.f == "acquire" and op.type == "ok":
            opened[p] = (op.time, op.value)
        elif op.f == "release" and op.type == "invoke" and p in opened:
            t0, fence = opened.pop(p)
            bad = t0 in (a["start"], b["start"])
            done = _completion(window, i)
            failed = done is not None and done.type == "fail"
            title = f"client {p} holds `{key}`" + (f", fence {fence}" if fence is not None else "")
            lane.bars.append((t0, op.time, bad, failed, title))
            if failed:
                err = f": {done.error}" if done.error else ""
                lane.marks.append(Mark(done.time, "release failed", "release-fail", err[2:]))
            if p == pa and t0 == a["start"]:
                release_a = (op, done)
        elif op.f in WRITES and op.type == "invoke":
            done = _completion(window, i)
            held = opened.get(p)
            # a write carries its fence; a set add carries its element, under its hold's fence
            fence = op.value if op.f == "write" else (held[1] if held else None)
            element = f" element {op.value}" if op.f == "add" else ""
            outcome = "unknown" if done is None else done.type
            stale = p == pa and op.time > taken_at and t0_of(opened, p) == a["start"]
            mk = "stale" if stale and outcome == "ok" else "write"
            if done is not None and done.type == "fail":
                mk = "rejected"
            elif done is None or done.type == "info":
                mk = "unknown" if stale else "write"
            label = f"w{fence}" if fence is not None else "w"
            what_op = f"{op.f}{element}" + (f", fence {fence}" if fence is not None else "")
            lane.marks.append(Mark(op.time, label, mk, f"{what_op} → {outcome}"))
            if p == pb and t0_of(opened, p) == b["start"] and outcome == "ok":
                wrote_b = True
            if stale and not stale_told:  # the first stale write tells it; the zoom shows all
                stale_told = True
                with_f = f" with fence {fence}" if fence is not None else ""
                if outcome == "ok":
                    what = "the store accepted the stale write"
                elif done is not None and done.type == "fail":
                    what = f"the store rejected it ({done.error or 'failed'})"
                else:
                    what = "the write's outcome is unknown"
                events.append(
                    (
                        op.time,
                        "stale",
                        f"still believed it held the lock and "
                        f"{'added' + element if element else 'wrote'}{with_f} at "
                        f"{at(op.time)}: {what}",
                    )
                )
    for p, (t0, _f) in opened.items():  # still held at the end of the window
        bad = t0 in (a["start"], b["start"])
        title = f"client {p} holds `{key}`, never released"
        lanes[p].bars.append((t0, max(hi, t0), bad, True, title))
    for h in (a, b):  # holds the history did not show (results from another tool)
        lane = lanes[h.get("process")]
        if _num(h.get("start")) and not any(x[0] == h["start"] for x in lane.bars):
            end = h["end"] if _num(h.get("end")) else max(hi, h["start"])
            lane.bars.append(
                (h["start"], end, True, h.get("end") is None, f"fence {h.get('fence')}")
            )
    events.append(
        (
            b["start"],
            "acquire",
            f"client {pb} acquired at {at(b['start'])}{_fence(b)}"
            + (" and wrote" if wrote_b else ""),
        )
    )
    if release_a is not None:  # told when it was sent; its outcome when it came back
        rel, done = release_a
        if done is not None and done.type == "fail":
            err = f" ({done.error})" if done.error else ""
            events.append(
                (
                    rel.time,
                    "release",
                    f"client {pa} sent its release at {at(rel.time)}; it failed at "
                    f"{at(done.time)}{err}",
                )
            )
        elif kind == "overlap":
            both = (rel.time - b["start"]) / 1e6
            events.append(
                (
                    rel.time,
                    "release",
                    f"client {pa} sent its release only at {at(rel.time)}: both acted as "
                    f"holder for {both:.1f} ms",
                )
            )
    elif a.get("end") is None and a.get("release_index") is None:
        events.append((hi, "release", f"client {pa} never released it"))
    events.sort(key=lambda e: e[0])
    parts: list[str] = []
    for i, (_t, what, text) in enumerate(events):
        if what == "stale":
            prev = events[i - 1][1] if i else ""
            if prev == "resume":
                parts[-1] += ", " + text
            else:
                parts.append(f"client {pa} " + text)
        else:
            parts.append(text)
    text = "; ".join(parts) + "."
    text = text[0].upper() + text[1:]
    why = _why(kind, v, a, b, release_a, look, lock, at)
    if why:
        text += " " + why
    core = [span[0], span[1]] + [t for t, what, _ in events if what in ("stale", "release")]
    t_lo, t_hi = min(core), max(core)
    pad = max(int((t_hi - t_lo) * MARGIN * 2), 1_000_000)
    w_lo, w_hi = max(0, t_lo - pad), t_hi + pad
    for ln in lanes.values():  # what lies outside the window is left out, not squeezed in
        ln.bars = [x for x in ln.bars if x[1] >= w_lo and x[0] <= w_hi]
        ln.marks = [m for m in ln.marks if w_lo <= m.t <= w_hi]
    return Story(
        number=n,
        kind=kind,
        key=key,
        text=text,
        lo=w_lo,
        hi=w_hi,
        lanes=[lanes[p] for p in procs],
        faults=[f for f in overlapping(faults, w_lo, w_hi) if f.injected],
        lines=lines,
        who=f"client {pa} / client {pb}",
        at=b["start"],
    )


def _why(
    kind: str,
    v: dict[str, Any],
    a: dict[str, Any],
    b: dict[str, Any],
    release_a: tuple[Op, Op | None] | None,
    look: OpLookup,
    lock: Lock,
    at: Any,
) -> str:
    """What the violation was, in one sentence after its story (the checker's class)."""
    pa, pb = a.get("process"), b.get("process")
    sent = release_a[0].time if release_a is not None else None
    if sent is None:
        pos = look.pos(a.get("release_index"))
        sent = look.ops[pos].time if pos is not None else None
    acting = v.get("while_acting")
    if not isinstance(acting, bool):  # results from before while_acting: from the times
        acting = sent is None or b["start"] < sent
    if kind == "revoked-while-held" and acting:
        if sent is None:
            return (
                f"Client {pb}'s acquire returned while client {pa} still acted as holder (it "
                "never sent a release): two clients acted as holder at once."
            )
        return (
            f"Client {pb}'s acquire returned before client {pa} sent its release (at "
            f"{at(sent)}): two clients acted as holder at once."
        )
    if kind == "revoked-while-held":
        return (
            f"Client {pa} had stopped acting before client {pb} acquired, but no release had "
            "taken effect: no two clients acted at once, yet the lock was taken from its "
            "holder."
        )
    if kind != "early-grant":
        return ""
    stopped = f"Client {pa} had stopped acting" + (f" at {at(sent)}" if sent is not None else "")
    if lock.has_ttl and lock.ttl_ms is not None:
        t = began(look.ops, a, b["start"])
        if t is not None:
            until = t[0] + lock.ttl_ms * 1e6
            owed = (
                f"its {ms_text(lock.ttl_ms)} lease could not run out before {at(until)} "
                f"({t[1]} was sent at {at(t[0])})"
            )
        else:
            owed = f"its {ms_text(lock.ttl_ms)} lease could not yet have run out"
    elif lock.expiry == "none":
        owed = "this lock's grants never run out on their own, and no release had taken effect"
    elif lock.expiry == "hidden":
        owed = (
            "the lock renews its grants in the background, so the history cannot show that "
            "its grant had run out"
        )
    else:
        owed = "no TTL is known, so its grant cannot be shown to have run out"
    return (
        f"{stopped}, but {owed}: the lock gave the grant away early, to client {pb} (a server "
        "that forgot it, a clock jump, a failover)."
    )


def _span(look: OpLookup, a: dict[str, Any], b: dict[str, Any]) -> tuple[int, int]:
    """From the first holder's acquire to the last of both holds' release invocations (or the
    second acquire, when neither released)."""
    times = [t for h in (a, b) for t in (h.get("start"), h.get("end")) if _num(t)]
    for h in (a, b):
        pos = look.pos(h.get("release_index"))
        if pos is not None:
            times.append(look.ops[pos].time)
    lo = a["start"] if _num(a.get("start")) else min(times)
    return int(lo), int(max(times))


def t0_of(opened: dict[Any, tuple[int, Any]], p: Any) -> int | None:
    got = opened.get(p)
    return None if got is None else got[0]


def _non_owner(
    n: int,
    v: dict[str, Any],
    a: dict[str, Any] | None,
    window: list[Op],
    lo: int,
    hi: int,
    faults: Sequence[Period],
    key: Any,
) -> Story:
    rels = [
        o
        for o in v.get("ops") or []
        if isinstance(o, dict) and o.get("f") == "release" and o.get("type") == "ok"
    ]
    if a is not None:
        rels = [o for o in rels if o.get("process") != a.get("process")] or rels
    rel = rels[-1] if rels else {}
    p, t = rel.get("process", "?"), rel.get("time", lo)
    text = f"Client {p} released lock `{key}` at {secs(t)} although it did not hold it"
    lanes = [
        Lane(f"client {p}", marks=[Mark(int(t), "release ok", "stale", "release by non-owner")])
    ]
    if a is not None:
        end = a["end"] if _num(a.get("end")) else hi
        text += (
            f"; the latest holder was client {a.get('process')}, which acquired at "
            f"{secs(a['start'])}{_fence(a)}"
        )
        lanes.insert(
            0,
            Lane(f"client {a.get('process')}", [(a["start"], end, True, a.get("end") is None, "")]),
        )
    pad = max(int((hi - lo) * MARGIN), 5_000_000)
    return Story(
        n,
        "release-by-non-owner",
        key,
        text + ".",
        max(0, lo - pad),
        hi + pad,
        lanes,
        [f for f in overlapping(faults, lo - pad, hi + pad) if f.injected],
        [],
        f"client {p}",
        int(t),
    )
