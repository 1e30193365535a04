"""Availability of the lock inside fault windows versus outside them, from the history.

A fault window runs from the invocation of a ``start-X`` nemesis op that put fault X in force
(completed without an error, and not ``"injected": false``) to the completion of the next
``stop-X`` (or the end of the history).

Two measures, never a verdict:

- ``measure``: acquire attempts (an attempt belongs inside when it was invoked in a window).
  Per side: attempts, successes, success ratio, successful acquires per second of that side's
  time, and the latency of successful acquires (p50, p99). A share of attempts depends on how
  often clients ask (a retry loop makes thousands of failures a second), so it is kept as a count
  beside the measure in time.
- ``over_time``: the share of time in which the lock was held or grantable, per window and
  outside them, and the time from each heal to the next grant (docs/design.md, "Availability in
  time", defines it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .blame import FOREVER, Acting
from .colcheck import ColumnHistory
from .columns import OK, ROWS_AT_ONCE, OpsView, Unusual, index_dtype, max_time, nemesis_ops
from .history import NEMESIS, Op, exact
from .holds import sort_ops
from .pairing import NEVER_RETURNED, Pair, pair
from .perf import percentiles
from .results import AvailabilityInTime, TimeShare, WindowShare

SIDES = ("inside", "outside")
#: An acquire that waited longer than this while nobody held its key did not find the lock
#: grantable for the rest of its wait: a grant takes a round trip (an etcd or ZooKeeper election
#: of a new leader takes about a second and counts against the lock), not a fault's length.
PROMPT_MS = 1000
MAX_WINDOWS = 50  # windows listed one by one in results.json; the sides count them all

Span = tuple[int, int]  # [start, end) in ns


def windows(ops: list[Op]) -> list[tuple[int, int]]:
    """Merged, sorted fault windows (ns) of a history (ops in any order)."""
    return _merge([(a, b) for _, a, b, _ in fault_windows(ops)])


def fault_windows(ops: Sequence[Op], end: int | None = None) -> list[tuple[str, int, int, bool]]:
    """Each fault's window, (fault, start ns, end ns, healed), by start, not merged; a fault
    never healed lasts to the end of the history (``end``: its latest op's time, when ``ops``
    are only the nemesis's)."""
    srt = sorted((op for op in ops if op.process == NEMESIS), key=lambda o: (o.time, o.index))
    if end is None:
        end = max((op.time for op in ops), default=0)
    pending: dict[str, Op] = {}  # f -> its invocation
    open_: dict[str, int] = {}  # fault name -> window start
    spans: list[tuple[str, int, int, bool]] = []
    for op in srt:
        what, _, name = op.f.partition("-")
        if what not in ("start", "stop") or not name:
            continue
        if op.type == "invoke":
            pending[op.f] = op
            continue
        inv = pending.pop(op.f, op)
        if what == "start":
            took = op.error is None and not (
                isinstance(op.value, dict) and op.value.get("injected") is False
            )
            if took and name not in open_:
                open_[name] = inv.time
        elif name in open_:
            spans.append((name, open_.pop(name), op.time, True))
    spans += [(name, t, end, False) for name, t in open_.items()]
    return sorted(spans, key=lambda w: (w[1], w[2], w[0]))


def _merge(spans: Iterable[Span]) -> list[Span]:
    """A union of intervals: sorted, disjoint, empty ones dropped."""
    merged: list[Span] = []
    for a, b in sorted(spans):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _minus(a: list[Span], b: list[Span]) -> list[Span]:
    """``a`` without ``b``, both merged."""
    out: list[Span] = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] <= lo:
            j += 1
        k = j
        while lo < hi:
            if k >= len(b) or b[k][0] >= hi:
                out.append((lo, hi))
                break
            if b[k][0] > lo:
                out.append((lo, b[k][0]))
            lo = max(lo, b[k][1])
            k += 1
    return out


def _overlaps(spans: list[Span], starts: list[int], lo: int, hi: int) -> bool:
    """Does [lo, hi] meet one of merged ``spans`` (``starts``: their starts)?"""
    i = bisect_right(starts, hi) - 1
    return i >= 0 and spans[i][1] >= lo


def _within(spans: list[Span], lo: int, hi: int) -> int:
    """How much of merged ``spans`` lies in [lo, hi), ns."""
    return sum(max(0, min(b, hi) - max(a, lo)) for a, b in spans)


def _inside(spans: list[tuple[int, int]], starts: list[int], t: int) -> bool:
    i = bisect_right(starts, t) - 1
    return i >= 0 and t <= spans[i][1]


def measure(ops: Iterable[Op], *, samples: bool = False) -> dict[str, Any]:
    """Per side: available_share and unavailable_s (in time, from ``over_time``), attempts, ok,
    success_ratio, ok_per_s, seconds, latency_ms {p50, p99}; with ``samples`` also every
    successful acquire's latency (ms), to pool over runs. Also ``keys`` and each window's
    ``heal_to_grant_s``."""
    ops = list(ops)
    spans = windows(ops)
    starts = [a for a, _ in spans]
    client = sorted((op for op in ops if op.process != NEMESIS), key=lambda o: (o.time, o.index))
    first = client[0].time if client else 0
    last = client[-1].time if client else 0
    in_ns = sum(max(0, min(b, last) - max(a, first)) for a, b in spans)
    seconds = {"inside": in_ns / 1e9, "outside": max(0, last - first - in_ns) / 1e9}
    attempts = dict.fromkeys(SIDES, 0)
    ok = dict.fromkeys(SIDES, 0)
    lat: dict[str, list[float]] = {s: [] for s in SIDES}
    pending: dict[Any, Op] = {}
    for op in client:
        if op.f != "acquire":
            continue
        if op.type == "invoke":
            pending[op.process] = op
            side = "inside" if _inside(spans, starts, op.time) else "outside"
            attempts[side] += 1
            continue
        inv = pending.pop(op.process, None)
        if inv is None or op.type != "ok":
            continue
        side = "inside" if _inside(spans, starts, inv.time) else "outside"
        ok[side] += 1
        lat[side].append((op.time - inv.time) / 1e6)
    timed = over_time(ops)
    out: dict[str, Any] = {"windows": len(spans), "keys": timed["keys"]}
    out["heal_to_grant_s"] = [w["heal_to_grant_s"] for w in timed["windows"] if w["healed"]]
    for s in SIDES:
        p = percentiles(lat[s])
        out[s] = {
            # in time (``over_time``): what a comparison shows; the attempts beside it
            "available_share": timed[s]["available_share"],
            "unavailable_s": timed[s]["unavailable_s"],
            "seconds": round(seconds[s], 3),
            "attempts": attempts[s],
            "ok": ok[s],
            "success_ratio": round(ok[s] / attempts[s], 6) if attempts[s] else None,
            "ok_per_s": round(ok[s] / seconds[s], 3) if seconds[s] > 0 else None,
            "latency_ms": {"p50": p["p50"], "p99": p["p99"]},
        }
        if samples:
            out[s]["samples"] = lat[s]
    return out


# --- availability in time ----------------------------------------------------------------------


def unavailable(
    ops: Sequence[Op], prompt_ms: int = PROMPT_MS
) -> tuple[dict[Any, list[Span]], Span]:
    """Per key, when the lock was neither held nor grantable (merged spans, ns), and the load's
    span. See docs/design.md, "Availability in time":

    - held: some client acting as holder (its acquire's ``ok`` to its release's invocation);
    - else the last evidence decides: a grant (an acquire's ``ok``) says grantable from then on;
      an acquire that failed or whose outcome is unknown, and that no hold of its key overlapped
      (so nobody held it against the client), says not grantable from its invocation on; before
      any evidence the lock counts as grantable (its servers were up and ready);
    - and the part of an ``ok`` acquire's wait past ``prompt_ms`` not covered by a hold: the
      lock was not grantable for that long, though the client got it in the end.
    """
    srt = sort_ops(ops)
    return _unavailable(srt, pair(srt, ("acquire",)).pairs, prompt_ms)


def _unavailable(
    srt: list[Op], pairs: list[Pair], prompt_ms: int
) -> tuple[dict[Any, list[Span]], Span]:
    client = [op for op in srt if op.process != NEMESIS]
    if not client:
        return {}, (0, 0)
    t0, t1 = client[0].time, client[-1].time
    acting = Acting(client)
    held: dict[Hashable, list[Span]] = {}
    for (_p, k), spans in acting.spans.items():
        held.setdefault(k, []).extend((s, t1 if e == FOREVER else e) for s, e in spans)
    held = {k: _merge(v) for k, v in held.items()}
    held_starts = {k: [a for a, _ in v] for k, v in held.items()}
    prompt = prompt_ms * 1_000_000
    # per key: evidence (time, order, grantable?) and the slow waits of granted acquires
    evidence: dict[Hashable, list[tuple[int, int, bool]]] = {}
    slow: dict[Hashable, list[Span]] = {}
    keys: dict[Hashable, Any] = {}
    for _p, _f, key, type_, inv, pos in pairs:
        if inv < 0:
            continue
        k = exact(key)
        keys.setdefault(k, key)
        t_inv = srt[inv].time
        t_done = t1 if pos == NEVER_RETURNED else srt[pos].time
        ev = evidence.setdefault(k, [])
        if type_ == "ok":
            ev.append((t_done, 0, True))
            if t_done - t_inv > prompt:
                slow.setdefault(k, []).append((t_inv + prompt, t_done))
        elif not _overlaps(held.get(k, []), held_starts.get(k, []), t_inv, t_done):
            ev.append((t_inv, 1, False))  # refused or unknown with nobody holding it
    out: dict[Any, list[Span]] = {}
    for k, key in keys.items():
        down: list[Span] = []
        since: int | None = None  # not grantable since
        for t, _o, up in sorted(evidence.get(k, [])):
            if up and since is not None:
                down.append((since, t))
                since = None
            elif not up and since is None:
                since = t
        if since is not None:
            down.append((since, t1))
        spans = _merge([*down, *slow.get(k, [])])
        spans = _minus(spans, held.get(k, []))
        out[key] = [(max(a, t0), min(b, t1)) for a, b in spans if b > t0 and a < t1]
    return out, (t0, t1)


def over_time(ops: Iterable[Op], prompt_ms: int = PROMPT_MS) -> AvailabilityInTime:
    """The share of time the lock was held or grantable, in each fault window, inside them all
    and outside; the time from each heal to the next grant; acquire attempts beside them."""
    if isinstance(ops, OpsView) and ops.rows is None:  # a history in columns
        try:
            return _over_time_columns(ops, prompt_ms)
        except Unusual:
            pass
    srt = sort_ops(ops)
    pairs = pair(srt, ("acquire",)).pairs
    down, (t0, t1) = _unavailable(srt, pairs, prompt_ms)
    invoked: list[int] = []  # acquires' invocation times
    granted: list[int] = []  # granted acquires' invocation times
    grants: list[int] = []  # grant (ok) times
    for _p, _f, _k, type_, inv, pos in pairs:
        if inv < 0:
            continue
        invoked.append(srt[inv].time)
        if type_ == "ok":
            granted.append(srt[inv].time)
            grants.append(srt[pos].time)
    flat = [span for spans in down.values() for span in spans]
    return _in_time(
        Evidence(
            keys=len(down),
            down=np.array(flat, dtype=np.int64).reshape(-1, 2),
            t0=t0,
            t1=t1,
            invoked=np.sort(np.array(invoked, dtype=np.int64)),
            granted=np.sort(np.array(granted, dtype=np.int64)),
            grants=np.sort(np.array(grants, dtype=np.int64)),
        ),
        fault_windows(srt),
        prompt_ms,
    )


@dataclass
class Evidence:
    """What the figures in time are computed from: how many keys, every key's unavailable spans
    (rows [start, end), ns, any order), the load's span, and the acquires' times (sorted)."""

    keys: int
    down: np.ndarray
    t0: int
    t1: int
    invoked: np.ndarray
    granted: np.ndarray
    grants: np.ndarray  # sorted


def _in_time(ev: Evidence, faults: list[tuple[str, int, int, bool]], prompt_ms: int) -> Any:
    t0, t1, keys, grants = ev.t0, ev.t1, ev.keys, ev.grants
    inside = _merge((max(a, t0), min(b, t1)) for _, a, b, _ in faults)
    lo_d, hi_d = ev.down[:, 0], ev.down[:, 1]

    def count(times: np.ndarray, a: int, b: int) -> int:  # how many in [a, b]
        return int(np.searchsorted(times, b, "right") - np.searchsorted(times, a, "left"))

    def overlap(a: int, b: int) -> int:  # of the down spans with [a, b]
        lost = 0
        for i in range(0, len(lo_d), ROWS_AT_ONCE):  # a chunk's temporaries at a time
            d = np.minimum(hi_d[i : i + ROWS_AT_ONCE], b)
            d -= np.maximum(lo_d[i : i + ROWS_AT_ONCE], a)
            lost += int(d[d > 0].sum())
        return lost

    def share(spans: list[Span]) -> TimeShare:
        secs = sum(b - a for a, b in spans)
        lost = sum(overlap(a, b) for a, b in spans)
        return {
            "seconds": round(secs / 1e9, 3),
            "available_share": round(1 - lost / (secs * keys), 6) if secs and keys else None,
            "unavailable_s": round(lost / 1e9, 3),
            "attempts": sum(count(ev.invoked, a, b) for a, b in spans),
            "ok": sum(count(ev.granted, a, b) for a, b in spans),
        }

    rows: list[WindowShare] = []
    heals: list[float] = []
    for name, a, b, healed in faults:
        i = int(np.searchsorted(grants, b, "left"))
        after = (int(grants[i]) - b) / 1e9 if healed and i < len(grants) else None
        if after is not None:
            heals.append(after)
        if len(rows) < MAX_WINDOWS:
            lo, hi = max(a, t0), min(b, t1)
            rows.append(
                {
                    "fault": name,
                    "start_s": round(a / 1e9, 3),
                    "end_s": round(b / 1e9, 3),
                    **share([(lo, hi)] if hi > lo else []),
                    "healed": healed,
                    "heal_to_grant_s": round(after, 3) if after is not None else None,
                }
            )
    heals.sort()
    return {
        "keys": keys,
        "span_s": round(max(0, t1 - t0) / 1e9, 3),
        "prompt_ms": prompt_ms,
        "inside": share(inside),
        "outside": share(_minus([(t0, t1)], inside) if t1 > t0 else []),
        "windows": rows,
        "window_count": len(faults),
        "heal_to_grant_s": {
            "max": round(heals[-1], 3) if heals else None,
            "median": round(heals[(len(heals) - 1) // 2], 3) if heals else None,
        },
    }


def _over_time_columns(ops: OpsView, prompt_ms: int) -> Any:
    """``over_time`` of a history in columns: the same figures from numpy sweeps (only the
    measure of the unavailable spans is needed, so they are never merged one key at a time).
    Keys are independent: the spans are found a range of keys at a time (``_key_ranges``), so
    the sweeps' temporaries are those of one range, not of the whole history."""
    c = ops.cols
    ch = ColumnHistory.of(c)
    if ch.client_span is None:
        raise Unusual("no client op")
    t0, t1 = ch.client_span
    P = ch.pairs
    big = t1 + 1
    if t0 < 0 or big * (len(c.keys) + 1) * 2 >= 2**62:
        raise Unusual("times outside [0, 2^62 / keys) cannot be combined with keys")
    # Acting (checkers.blame): per (process, key), from an acquire's ok to a release's invocation
    ev_pos, ev_acq, ev_key, same = _acting_events(ch)
    # acquires: grants (up) and refusals nobody's hold explains (down); positions are kept
    # (4 bytes), their times (8) taken a range at a time
    ap = np.flatnonzero((P.f == ch.ACQ) & (P.inv >= 0))
    a_key, a_inv, a_pos = P.key[ap], P.inv[ap], P.pos[ap]
    ok = P.type[ap] == OK
    del ap
    keys = len(np.unique(a_key))
    downs = []
    ranges = _key_ranges(ev_key, a_key, len(c.keys))
    for lo, hi in ranges:
        whole = len(ranges) == 1  # one range (one key, or few events): views, not copies
        e: Any = slice(None) if whole else (ev_key >= lo) & (ev_key < hi)
        a: Any = slice(None) if whole else (a_key >= lo) & (a_key < hi)
        events = [_key_times(ev_key[e], ch.t(ev_pos[e]), big), ev_acq[e], same[e]]
        if whole:  # not needed again: freed as the sweep goes (one key may be all the history)
            del ev_pos, ev_key, ev_acq, same
        held = _held_spans(events, t1)  # before the acquires' times: the peak of one
        done = a_pos[a]
        t_done = ch.t(np.maximum(done, 0))
        t_done[done == NEVER_RETURNED] = t1
        ak = a_key[a]
        acquires = [_key_times(ak, ch.t(a_inv[a]), big), _key_times(ak, t_done, big), ok[a]]
        del e, a, done, t_done, ak
        downs.append(_down_spans(held, acquires, t0, t1, prompt_ms))
    if len(ranges) != 1:
        del ev_pos, ev_key, ev_acq, same
    # times in sorted order: those at sorted positions (positions are in time order)
    ev = Evidence(
        keys=keys,
        down=np.concatenate(downs) if downs else np.zeros((0, 2), np.int64),
        t0=t0,
        t1=t1,
        invoked=ch.t(np.sort(a_inv)),
        granted=ch.t(np.sort(a_inv[ok])),
        grants=ch.t(np.sort(a_pos[ok & (a_pos != NEVER_RETURNED)])),
    )
    del downs, a_key, a_inv, a_pos, ok  # the evidence is all that is needed from here
    return _in_time(ev, fault_windows(nemesis_ops(ops), end=max_time(ops)), prompt_ms)


KEYS_AT_ONCE = 1 << 18  # acquires and acting events of a range of keys swept at once


def _key_ranges(ev_key: np.ndarray, a_key: np.ndarray, nkeys: int) -> list[tuple[int, int]]:
    """Ranges [lo, hi) of key codes, each with about ``KEYS_AT_ONCE`` events and acquires (more
    when one key has more)."""
    if not nkeys:
        return []
    n = np.bincount(ev_key, minlength=nkeys) + np.bincount(a_key, minlength=nkeys)
    cum = np.cumsum(n)
    marks = np.arange(KEYS_AT_ONCE, int(cum[-1]), KEYS_AT_ONCE)
    cuts = np.searchsorted(cum, marks, "left") + 1
    edges = np.unique(np.concatenate(([0], np.minimum(cuts, nkeys), [nkeys])))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _key_times(key: np.ndarray, t: np.ndarray, big: int) -> np.ndarray:
    """``key * big + t`` (times in [0, big)), written into ``t``, a fresh array: one int64 that
    orders by (key, time), and two of one key differ by their times' difference. Half the
    memory of a key and a time side by side, which one key with all the ops cannot spare."""
    for i in range(0, len(t), ROWS_AT_ONCE):  # an int64 copy of a chunk of keys at a time
        k = key[i : i + ROWS_AT_ONCE].astype(np.int64)
        k *= big
        t[i : i + ROWS_AT_ONCE] += k
    return t


def _end_unended(lo: np.ndarray, hi: np.ndarray, t1: int) -> None:
    """Runs nothing ended (``hi`` -1, from ``_runs``) last to their key's time ``t1``."""
    never = hi < 0
    start = lo[never]
    hi[never] = start - start % (t1 + 1) + t1


def _held_spans(events: list[np.ndarray], t1: int) -> list[np.ndarray]:
    """The spans [lo, hi) in key-times (``_key_times``, ``big`` = t1 + 1) in which a key was
    held, in (key, start) order, from the acting events (key-times, acquire?, same group as the
    previous?) of some keys, taken out of ``events`` (emptied: each array is freed below once
    used, as in ``_down_spans``)."""
    ev_kt, ev_acq, same = events
    events.clear()
    prev_acq = np.zeros(len(ev_kt), bool)
    prev_acq[1:] = ev_acq[:-1]
    acting_before = same & prev_acq
    del prev_acq
    h_lo, h_hi = _runs(ev_acq & ~acting_before, ~ev_acq & acting_before, same, ev_kt)
    del ev_kt, ev_acq, same, acting_before
    _end_unended(h_lo, h_hi, t1)
    keep = h_hi > h_lo
    h_lo, h_hi = h_lo[keep], h_hi[keep]
    del keep
    hs = np.argsort(h_lo)  # (key, start); ties need no order
    return [h_lo[hs], h_hi[hs]]


def _down_spans(
    held_spans: list[np.ndarray],
    acquires: list[np.ndarray],
    t0: int,
    t1: int,
    prompt_ms: int,
) -> np.ndarray:
    """The spans (lo, hi) in which a key was unavailable, in (key, time) order: from the held
    spans of some keys (``_held_spans``) and their acquires (key-times invoked and done, ok?),
    both taken out of their lists (emptied: each array is freed below once its last use is
    past; this pass's peak, not its sum, is what a range adds)."""
    big = t1 + 1
    h_lo, h_hi = held_spans
    a_inv, a_done, ok = acquires
    held_spans.clear()
    acquires.clear()
    # an acquire was held up by a hold of its key that began before it ended and reached past
    # its start (spans of earlier keys end before its key's first key-time)
    held = np.zeros(len(a_done), bool)
    reach = np.maximum.accumulate(h_hi) if len(h_lo) else h_hi
    for i in range(0, len(a_done) if len(h_lo) else 0, ROWS_AT_ONCE):  # a chunk's temporaries
        part = slice(i, i + ROWS_AT_ONCE)
        j = np.searchsorted(h_lo, a_done[part], "right") - 1
        held[part] = (j >= 0) & (reach[np.maximum(j, 0)] >= a_inv[part])
    del reach
    dn = ~ok & ~held
    del held
    e_t = np.concatenate((a_done[ok], a_inv[dn]))
    e_o = np.concatenate(
        (np.zeros(np.count_nonzero(ok), np.int8), np.ones(np.count_nonzero(dn), np.int8))
    )
    del dn
    order_by = e_t * 2
    order_by += e_o
    eo = np.argsort(order_by)  # (key, time, up first); ties are alike
    del order_by
    e_t, e_o = e_t[eo], e_o[eo]
    del eo
    e_k = e_t // big
    e_same = np.zeros(len(e_t), bool)
    e_same[1:] = e_k[1:] == e_k[:-1]
    del e_k
    is_dn = e_o == 1
    prev_dn = np.zeros(len(e_t), bool)
    prev_dn[1:] = is_dn[:-1]
    d_lo, d_hi = _runs(is_dn & ~(e_same & prev_dn), ~is_dn & e_same & prev_dn, e_same, e_t)
    del e_t, e_o, e_same, is_dn, prev_dn
    _end_unended(d_lo, d_hi, t1)
    slow = ok & (a_done - a_inv > prompt_ms * 1_000_000)
    s_lo, s_hi = a_inv[slow] + prompt_ms * 1_000_000, a_done[slow]
    del slow, a_inv, a_done, ok
    # per key: (down or slow) and not held, within [t0, t1]: a sweep over every boundary
    lo_all = np.concatenate((d_lo, s_lo, h_lo))
    hi_all = np.concatenate((d_hi, s_hi, h_hi))
    is_h = np.concatenate((np.zeros(len(d_lo) + len(s_lo), bool), np.ones(len(h_lo), bool)))
    del d_lo, d_hi, s_lo, s_hi, h_lo, h_hi
    keep = hi_all > lo_all
    lo_all, hi_all, is_h = lo_all[keep], hi_all[keep], is_h[keep]
    del keep
    return _uncovered(lo_all, hi_all, is_h, t0, t1)


SWEEP_AT_ONCE = 1 << 20  # spans swept at once; more are swept a window of time at a time


def _uncovered(lo: np.ndarray, hi: np.ndarray, held: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """Per key, the spans of time within [t0, t1] that some span not ``held`` covers and no
    ``held`` span does, in (key, time) order per window; spans in key-times (``_key_times``).
    Many spans are swept a window of key-times at a time, each clipped to the window: a point is
    covered by a clipped span exactly when it is by the span, so the spans found measure the
    same (only split at the windows' edges)."""
    if len(lo) <= SWEEP_AT_ONCE:
        return _sweep(lo, hi, held, t0, t1)
    w = -(-len(lo) // SWEEP_AT_ONCE)
    a0, b0 = int(lo.min()), int(hi.max())
    edges = np.linspace(a0, b0, w + 1).round().astype(np.int64)
    edges[0], edges[-1] = a0, b0  # exact: key-times past 2^53 are not exact as floats
    edges = np.unique(edges)
    parts = []
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        sel = (lo < b) & (hi > a)
        parts.append(_sweep(np.maximum(lo[sel], a), np.minimum(hi[sel], b), held[sel], t0, t1))
        del sel
    return np.concatenate(parts)


def _sweep(lo: np.ndarray, hi: np.ndarray, held: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """``_uncovered`` of some spans at once: a sweep over every boundary."""
    n = len(lo)
    big = t1 + 1
    bt = np.concatenate((lo, hi))
    step = np.concatenate((np.ones(n, np.int8), -np.ones(n, np.int8)))
    bh = np.concatenate((held, held))
    bo = np.argsort(bt)  # (key, time): at one time the order nets out
    bt, step, bh = bt[bo], step[bo], bh[bo]
    del bo
    small = index_dtype(2 * n)
    dcount = np.cumsum(np.where(bh, 0, step), dtype=small)
    hcount = np.cumsum(np.where(bh, step, 0), dtype=small)
    del step, bh
    bk = bt // big
    seg = np.flatnonzero((bk[1:] == bk[:-1]) & (dcount[:-1] > 0) & (hcount[:-1] == 0))
    del dcount, hcount, bk
    lo_s = np.maximum(bt[seg] % big, t0)
    hi_s = np.minimum(bt[seg + 1] % big, t1)
    return np.stack((lo_s, hi_s), axis=1) if len(seg) else np.zeros((0, 2), np.int64)


def _acting_events(ch: ColumnHistory) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Acquires' oks and releases' invocations per (process, key) in time order: (positions,
    acquire?, key, same group as the previous event?). The holds sweep has the lock ops in that
    order already; a history it refuses is sorted here."""
    P = ch.pairs
    try:
        e, grp = ch.holds.lock_order, ch.holds.lock_group
    except Unusual:
        e = None
    if e is not None:
        f, ty = P.f[e], P.type[e]
        is_ao = (f == ch.ACQ) & (ty == OK)
        sel = np.flatnonzero(is_ao | (f == ch.REL))
        ev_acq = is_ao[sel]
        ev = e[sel]
        ev_pos = np.where(ev_acq, P.pos[ev], P.inv[ev])
        g = grp[sel]
        same = np.zeros(len(sel), bool)
        same[1:] = g[1:] == g[:-1]
        return ev_pos, ev_acq, P.key[ev], same
    ao = np.flatnonzero((P.f == ch.ACQ) & (P.type == OK))
    ri = np.flatnonzero(P.f == ch.REL) if ch.REL >= 0 else np.zeros(0, dtype=np.int64)
    ev_pos = np.concatenate((P.pos[ao], P.inv[ri]))
    ev_acq = np.concatenate((np.ones(len(ao), bool), np.zeros(len(ri), bool)))
    ev_grp = np.concatenate((P.pgroup[ao], P.pgroup[ri])).astype(np.int64)
    ev_key = np.concatenate((P.key[ao], P.key[ri])).astype(np.int64)
    o = np.lexsort((ev_pos, ev_key, ev_grp))
    ev_pos, ev_acq, ev_key, ev_grp = ev_pos[o], ev_acq[o], ev_key[o], ev_grp[o]
    same = np.zeros(len(o), bool)
    if len(o):
        same[1:] = (ev_grp[1:] == ev_grp[:-1]) & (ev_key[1:] == ev_key[:-1])
    return ev_pos, ev_acq, ev_key, same


def _runs(
    start: np.ndarray, end: np.ndarray, same: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spans of a sequence of events grouped by ``same`` (True: same group as the previous
    event): each ``start`` event opens one, the next ``end`` event of its group closes it (-1:
    none did). Returns (start times, end times)."""
    small = index_dtype(len(same))  # narrow: one key's runs may span all of a history
    si = np.flatnonzero(start).astype(small)
    ei = np.flatnonzero(end).astype(small)
    k = np.searchsorted(ei, si, "right").astype(small)
    has = k < len(ei)
    np.minimum(k, max(len(ei) - 1, 0), out=k)
    if not len(ei):
        return times[si], np.full(len(si), -1, np.int64)
    e = ei[k]
    del ei, k
    grp = np.cumsum(~same, dtype=small)
    has &= grp[e] == grp[si]
    del grp
    hi = times[e]
    hi[~has] = -1
    return times[si], hi


def _count(sorted_times: list[int], lo: int, hi: int) -> int:
    """How many of ``sorted_times`` lie in [lo, hi]."""
    return bisect_right(sorted_times, hi) - bisect_left(sorted_times, lo)
