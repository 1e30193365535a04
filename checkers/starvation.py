"""The harness's own stalls: a lock is never blamed for a pause the harness caused.

A client starved of CPU by the harness's own load (a thousand clients on two cores), or stopped
by something that is not the run's nemesis, looks to a lock exactly like a paused client: its
lease runs out while it believes it holds, and the mutex checker sees a revoked hold. The run
measures its clients' scheduling lag while they run (``harness/run/lag.py``) and stores it
beside the history as ``lag.json`` (``LAG``); this module judges that record:

1. **Windows.** Each recorded window is a client's worker *runnable but not running* for more
   than half of the wall time (``runqueue``), *stopped* (``stopped``: state T), a pool of client
   threads whose GIL was saturated (``gil``), or the monitor itself woken late for want of a CPU
   (``harness``: the whole machine starved; it counts for every client).
2. **Planned faults are not stalls.** A nemesis op that put a fault on a client's process
   (client-pause's SIGSTOP, client-stall's GIL: a value with ``client`` and ``pid``) plans a
   pause of that pid from its start's invocation to its stop's completion; the parts of a
   window of that pid inside it (widened by ``margin``: the sampling's own uncertainty) are
   taken out. What is left is *unplanned*.
3. **What matters.** An unplanned window of at least ``SAFE_SHARE`` of the TTL (``NO_TTL_S``
   when the run knows none) can cost a holder its lease.
4. **The verdict.** A run with such a window whose invalid checkers are mutex and fencing
   only, and in which every finding listed (a violation; a fence token that did not increase,
   by the order the clients recorded; with enforced fencing a stale write accepted) involves,
   by its holds' and ops' processes (``process % clients``), a client stalled at the time (its
   ops' and holds' span, widened by the margin) and silent then (no op of its own for the
   threshold, ``silent``: a starved client records none), is UNKNOWN, with the reason in
   ``unknown_because`` (``unplanned_pause``), and so are those checkers' results (their
   findings kept): the stall, not the lock, may be why. When the mutex or fencing checker
   found more than its result lists, all of its findings are listed again (``relist``, up to
   ``RELIST_MAX``) and each must pass the same test. A violation clear of every
   stall proves the lock wrong: the run stays INVALID. A VALID run stays VALID (a history that
   holds under an extra pause is still a valid history), with the stall shown. Other
   checkers' findings (a lost update, a slot run twice) are not placed in time here: their
   INVALID stands.

``results.json`` gets ``stalls`` (``assess``): the figures whatever the verdict. A record marked
``partial`` (threads or workers the monitor could not read) excuses only by the windows it has,
and says so (``partial``, ``unreadable``, and in the reason): a missed stall leaves INVALID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import lacks_evidence
from .columns import NEM, OpsView, nemesis_ops
from .history import NEMESIS, Op
from .model import LockModel
from .results import checker_results

LAG = "lag.json"  # beside history.jsonl in a run directory
VERSION = 1
RUNQUEUE, STOPPED, HARNESS, GIL = "runqueue", "stopped", "harness", "gil"
SAFE_SHARE = 0.25  # of the TTL: a longer unplanned stall can cost a holder its lease
NO_TTL_S = 0.5  # the same when no TTL is known (a session timeout the history cannot see)
MARGIN_S = 0.05  # beside two sampling intervals: a SIGCONT's wake-up, the records' rounding
MAX_SHOWN = 20
NEVER = 1 << 62
#: the most mutex violations listed again to be placed in time (each a few KB in memory); a
#: run with more keeps its INVALID when a stall may explain them (``unlisted_violations``)
RELIST_MAX = 20_000

CAUSE = {
    RUNQUEUE: "the machine was overloaded (the client was runnable but got no CPU)",
    STOPPED: "a client process was stopped (SIGSTOP) by something other than the run's nemesis",
    HARNESS: "the machine was overloaded (the harness itself was not scheduled)",
    GIL: "the harness ran too many clients in one process (they queued for its GIL)",
}


@dataclass(frozen=True)
class Stall:
    kind: str
    pid: int
    clients: tuple[int, int] | None  # the client indexes [from, to) its worker runs; None: all
    start: int  # ns since the run started, as the history's times
    end: int

    def touches(self, client: int) -> bool:
        return self.clients is None or self.clients[0] <= client < self.clients[1]

    @property
    def who(self) -> str:
        if self.clients is None:
            return "all"
        lo, hi = self.clients
        return str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / 1e9


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def stalls_of(record: Mapping[str, Any]) -> list[Stall]:
    """The windows of a lag record; a malformed row is skipped (an edited file)."""
    one_each = record.get("one_client_per_worker") is True
    out = []
    for r in record.get("windows") or []:
        if not isinstance(r, dict):
            continue
        kind, pid, slot, s, e = (r.get(k) for k in ("kind", "pid", "slot", "start", "end"))
        if kind not in CAUSE or not (_int(pid) and _int(s) and _int(e)) or e < s:
            continue
        rng = r.get("clients")  # the worker's clients (a pool's thread is one of them)
        clients = None
        if kind == HARNESS:
            clients = None
        elif isinstance(rng, list) and len(rng) == 2 and all(map(_int, rng)) and rng[0] < rng[1]:
            clients = (rng[0], rng[1])
        elif one_each and _int(slot):
            clients = (slot, slot + 1)
        out.append(Stall(kind, pid, clients, s, e))
    return out


def planned(ops: Iterable[Op]) -> list[tuple[int, int, int]]:
    """(pid, from, to) of each fault the nemesis put on a client's process: from its start's
    invocation to its stop's completion (to the end when it was never stopped)."""
    invoked: dict[str, int] = {}
    on: dict[str, tuple[int, int]] = {}
    out = []
    for op in sorted((o for o in ops if o.process == NEMESIS), key=lambda o: (o.time, o.index)):
        what, _, name = op.f.partition("-")
        if op.type == "invoke":
            invoked[op.f] = op.time
            continue
        v = op.value if isinstance(op.value, dict) else {}
        if what == "start" and op.error is None and _int(v.get("pid")) and "client" in v:
            on[name] = (v["pid"], invoked.get(op.f, op.time))
        elif what == "stop" and name in on:
            pid, t = on.pop(name)
            out.append((pid, t, op.time))
    out += [(pid, t, NEVER) for pid, t in on.values()]
    return out


def unplanned(stalls: list[Stall], plans: list[tuple[int, int, int]], margin: int) -> list[Stall]:
    """The parts of the windows that no planned fault on their pid explains."""
    out = []
    for st in stalls:
        pieces = [(st.start, st.end)]
        for pid, a, b in plans:
            if pid != st.pid or st.kind == HARNESS:
                continue
            a, b = a - margin, b + margin
            pieces = [
                p
                for s, e in pieces
                for p in ((s, min(e, a)), (max(s, b), e))
                if p[1] > p[0]  # what lies before the fault, and after it
            ]
        out += [Stall(st.kind, st.pid, st.clients, s, e) for s, e in pieces]
    return out


def threshold_s(model: LockModel, record: Mapping[str, Any]) -> float:
    """How long an unplanned stall may last before it can cost a holder its lease."""
    ttl = model.ttl_ms if model.ttl_ms else record.get("lease_ms")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0:
        return SAFE_SHARE * ttl / 1000
    return NO_TTL_S


def margin_ns(record: Mapping[str, Any]) -> int:
    """Two of the record's longest sampling intervals and MARGIN_S: where a window's edges may
    lie."""
    iv = record.get("interval_ms")
    ok = isinstance(iv, list) and len(iv) == 2 and isinstance(iv[1], int | float)
    longest = float(iv[1]) if ok and not isinstance(iv[1], bool) else 250.0
    return int((2 * longest / 1000 + MARGIN_S) * 1e9)


def involved(v: Mapping[str, Any], clients: int) -> tuple[set[int], int, int] | None:
    """The clients a finding involves (``process % clients``) and the span of its holds and
    ops; None when it names no time. A finding: a mutex violation (holds ``first``,
    ``second``), a fencing one (holds ``previous``, ``hold``; a stale write's ``process``)."""
    procs, times = {v.get("process")}, []
    for h in (v.get(k) for k in ("first", "second", "previous", "hold")):
        if isinstance(h, dict):
            procs.add(h.get("process"))
            times += [h.get("start"), h.get("end")]
    for op in v.get("ops") or []:
        if isinstance(op, dict):
            procs.add(op.get("process"))
            times.append(op.get("time"))
    ts = [t for t in times if _int(t)]
    if not ts:
        return None
    who = {p % clients for p in procs if _int(p)} if clients > 0 else set()
    return who, min(ts), max(ts)


def coincides(st: Stall, clients: set[int], lo: int, hi: int, margin: int) -> bool:
    """Did the stall touch one of these clients while the finding's span lasted?"""
    on_one = st.clients is None or any(map(st.touches, clients))
    return on_one and st.start < hi + margin and st.end > lo - margin


def op_times(ops: Sequence[Op], clients: int, wanted: set[int]) -> dict[int, np.ndarray]:
    """The times of the ops (invocations and completions) of each wanted client
    (``process % clients``), sorted: one pass over the history, a sort of those clients' ops."""
    if clients <= 0 or not wanted:
        return {}
    if isinstance(ops, OpsView):
        rows = ops.rows if ops.rows is not None else slice(None)
        proc, time = ops.cols.process[rows], ops.cols.time[rows]
        c = proc % clients
        keep = (proc != NEM) & np.isin(c, np.fromiter(wanted, np.int64))
        c, t = c[keep], time[keep]
    else:
        pairs = [
            (op.process % clients, op.time)
            for op in ops
            if _int(op.process) and op.process % clients in wanted
        ]
        c = np.array([p[0] for p in pairs], dtype=np.int64)
        t = np.array([p[1] for p in pairs], dtype=np.int64)
    order = np.lexsort((t, c))
    c, t = c[order], t[order]
    return {w: t[np.searchsorted(c, w) : np.searchsorted(c, w, "right")] for w in wanted}


def silent(
    st: Stall,
    times: Mapping[int, np.ndarray],
    clients: set[int],
    lo: int,
    hi: int,
    margin: int,
    limit: int,
) -> bool:
    """Did a client of the finding that the stall touched record no op for ``limit`` ns at a
    time when the stall and the finding's span (widened by the margin) both lasted? A client
    the harness starved records nothing; one that kept recording was not starved then."""
    a, b = max(lo - margin, st.start), min(hi + margin, st.end)
    for c in (c for c in clients if st.touches(c)):
        t = times.get(c)
        if t is None or not len(t):
            return True  # no op at all: silent throughout
        i, j = int(np.searchsorted(t, a, "right")), int(np.searchsorted(t, b, "left"))
        if i == 0 or j == len(t) or i == len(t):
            return True  # no op before a, or none after b: silent since, or until, the end
        # the gaps between its ops that overlap (a, b): from the op before a to the one after b
        edges = t[i - 1 : max(j, i) + 1]
        if int(np.diff(edges).max()) >= limit:
            return True
    return False


def unplanned_pause(results: dict[str, Any], reason: str) -> None:
    """``lacks_evidence`` for a verdict the harness's own stall may have caused: an INVALID
    too becomes UNKNOWN, the reason in ``unknown_because`` and the summary."""
    if results.get("valid") is False:
        results["valid"] = "unknown"
    lacks_evidence(results, reason)


def _when(st: Stall) -> str:
    who = (
        "every client"
        if st.clients is None
        else f"client{'s' * ('-' in st.who)} {st.who} (pid {st.pid})"
    )
    return f"{who}, {st.start / 1e9:.1f}-{st.end / 1e9:.1f} s"


def assess(
    results: dict[str, Any],
    record: Mapping[str, Any] | None,
    ops: Sequence[Op],
    model: LockModel,
    *,
    quiet_ms: float = 0.0,
    relist: Callable[[Mapping[str, Any], int], Mapping[str, Any]] | None = None,
) -> None:
    """Judge a run's lag record (``lag.json``'s object; None: not measured, nothing said):
    ``results["stalls"]``, and the run UNKNOWN when its violations may be the harness's.
    ``ops``: the whole history (the clients' ops tell whether a stalled client fell silent);
    ``quiet_ms``: how long a client is silent by design (a hold's sleep), which the silence a
    stall excuses must exceed by the threshold; ``relist(result, n)``: that mutex or fencing
    result again with its first ``n`` findings listed (``checkers.relisted``), for a run that
    found more than its result lists (``RELIST_MAX`` at most)."""
    if record is None:
        return
    if not isinstance(record, Mapping) or record.get("measured") is not True:
        why = record.get("error") if isinstance(record, Mapping) else None
        results["stalls"] = {"measured": False, "why": str(why or "nothing was sampled")}
        return
    margin = margin_ns(record)
    plans = planned(nemesis_ops(ops))
    raw = stalls_of(record)
    free = unplanned(raw, plans, margin)
    limit = threshold_s(model, record)
    long = [s for s in free if s.seconds >= limit]
    by_client: dict[str, float] = {}
    for s in free:
        by_client[s.who] = by_client.get(s.who, 0.0) + s.seconds
    longest = max(free, key=lambda s: s.seconds, default=None)
    out: dict[str, Any] = {
        "measured": True,
        **_partial(record),
        "threshold_s": round(limit, 3),
        "total_s": round(sum(s.seconds for s in free), 3),
        "longest_s": round(longest.seconds, 3) if longest else 0.0,
        "longest": _row(longest) if longest else None,
        "count": len(long),
        "clients_stalled": _clients_stalled(long, record.get("clients")),
        "by_client": {
            k: round(v, 3) for k, v in sorted(by_client.items(), key=lambda kv: -kv[1])[:MAX_SHOWN]
        },
        "planned_s": round(sum(s.seconds for s in raw) - sum(s.seconds for s in free), 3),
        "harness_late_s": round(max((s.seconds for s in raw if s.kind == HARNESS), default=0), 3),
        "windows": [_row(s) for s in sorted(long, key=lambda s: -s.seconds)[:MAX_SHOWN]],
        "sweeps": record.get("sweeps"),
        "interval_ms": record.get("interval_ms"),
        "cost": record.get("cost"),
    }
    results["stalls"] = out
    if not long or results.get("valid") is not False:
        return
    invalid = {n: r for n, r in checker_results(results).items() if r.get("valid") is False}
    if not invalid or not set(invalid) <= set(FINDINGS):
        return  # a lost update, a slot run twice: not placed in time here, it stands
    clients = record.get("clients")
    n = clients if _int(clients) else 0
    found = {name: FINDINGS[name](r) for name, r in invalid.items()}
    for name, r in invalid.items():
        shown, total = found[name]
        need = LISTED[name](r)
        if relist is not None and len(shown) < total and need <= RELIST_MAX:
            # the result lists its first findings only: every one must be placed in time
            found[name] = FINDINGS[name](relist(r, need))
            out["relisted"] = out.get("relisted", 0) + len(found[name][0])
    listed = [f for fs, _ in found.values() for f in fs]
    spans = [involved(f, n) for f in listed]
    times = op_times(ops, n, {c for sp in spans if sp for c in sp[0]})
    hit, loud = [], 0
    need = int((limit + max(0.0, quiet_ms) / 1000) * 1e9)  # a silence longer than a hold's
    for sp in spans:
        on = [s for s in long if sp and coincides(s, *sp, margin)]
        # a window covers all of a pool's clients: it excuses only a client it silenced
        quiet = [s for s in on if sp and silent(s, times, *sp, margin, need)]
        loud += bool(on) and not quiet
        hit.append(max(quiet, key=lambda s: s.seconds) if quiet else None)
    out["violations_in_stalls"] = sum(h is not None for h in hit)
    if loud:  # in a window, but its client kept recording ops: not starved then
        out["not_silent"] = loud
    if not listed or None in hit:
        return  # a violation clear of every stall: the lock's, INVALID stands
    total = sum(t for _, t in found.values())
    if total > len(listed):
        # the checkers list the first violations key by key: one not listed may be clear of
        # every stall, so nothing proves the lock blameless; INVALID stands
        out["unlisted_violations"] = total - len(listed)
        return
    worst = max((h for h in hit if h is not None), key=lambda s: s.seconds)
    out["excused"] = True
    reason = (
        f"the harness's clients were starved for {worst.seconds:.1f} s ({_when(worst)}, "
        f"{limit:.2g} s would be safe): {CAUSE[worst.kind]}; this is an unplanned pause, and "
        f"every violation found involves a client stalled at the time"
    )
    if "partial" in out:  # the windows seen are real; say that some may not have been seen
        reason += f" (measured in part: {out['unreadable']} threads or workers could not be read)"

    # each invalid checker's result says so too (as a set result excused by a non-durable store
    # does), so a per-checker reader (JUnit's mutex case) does not blame the lock either
    for r in invalid.values():
        r["valid"] = "unknown"
        r["unknown_because"] = [reason, *r.get("unknown_because", [])]
        r["summary"] = f"unknown (an unplanned pause of the harness's clients); {r['summary']}"
    unplanned_pause(results, reason)


def _mutex_findings(r: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The violations listed, and how many there were."""
    vs = [v for v in r.get("violations") or [] if isinstance(v, dict)]
    n = r.get("violation_count")
    return vs, n if _int(n) and n > len(vs) else len(vs)


def _fencing_findings(r: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Tokens that did not increase (hold after hold, by the times the clients recorded: a
    holder starved between its grant and its record comes later than the next one), and with
    enforced fencing the stale writes accepted (stale by the same order)."""
    out = [x for x in r.get("non_increasing_examples") or [] if isinstance(x, dict)]
    n = r.get("non_increasing")
    total = n if _int(n) and n > len(out) else len(out)
    if r.get("enforced") is True:
        acc = [
            x
            for x in r.get("stale_examples") or []
            if isinstance(x, dict) and x.get("outcome") == "accepted"
        ]
        out += acc
        m = r.get("stale_accepted")
        total += m if _int(m) and m > len(acc) else len(acc)
    return out, total


#: the invalid results whose findings are placed in time here: each lists them (capped)
FINDINGS = {"mutex": _mutex_findings, "fencing": _fencing_findings}


def _fencing_listed(r: Mapping[str, Any]) -> int:
    """The limit at which a fencing result lists every finding: its two lists are capped
    apart, and the stale examples hold every stale write in time order, accepted or not."""

    def n(k: str) -> int:
        v = r.get(k)
        return v if _int(v) else 0

    stale = n("stale_accepted") + n("stale_rejected") + n("stale_unknown")
    return max(n("non_increasing"), stale if r.get("enforced") is True else 0)


#: for a result that found more than it lists: the listing that holds every finding
LISTED = {
    "mutex": lambda r: _mutex_findings(r)[1],
    "fencing": _fencing_listed,
}


def _partial(record: Mapping[str, Any]) -> dict[str, Any]:
    """``partial`` and ``unreadable`` for a record that missed threads or workers; nothing for a
    complete one (and for one from before the flag)."""
    if record.get("partial") is not True:
        return {}
    n = record.get("unreadable")
    return {"partial": True, "unreadable": n if _int(n) else None}


def _clients_stalled(long: list[Stall], clients: Any) -> int:
    """How many clients a long stall touched (all of them for a harness's own)."""
    if any(s.clients is None for s in long) and _int(clients):
        return clients
    return len({c for s in long if s.clients for c in range(*s.clients)})


def _row(s: Stall) -> dict[str, Any]:
    return {
        "kind": s.kind,
        "clients": s.who,
        "pid": s.pid,
        "start_s": round(s.start / 1e9, 3),
        "end_s": round(s.end / 1e9, 3),
        "seconds": round(s.seconds, 3),
    }
