"""The lock checkers (mutex, fencing, perf) over a history in columns (``checkers.columns``):
the same results as ``checkers.mutex``, ``checkers.fencing`` and ``checkers.perf`` over ``Op``
objects, computed with numpy from one pairing of invocations with completions.

The sweep of ``checkers.holds`` is sequential; here it is vectorised for the histories a
well-behaved client writes, and ``Unusual`` is raised for anything else (a release by a process
holding nothing, a second release that would override a first, fences that are not int64,
write ops), so that the caller takes the object path and the verdict can never differ.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from . import fencing as fencing_mod
from . import mutex as mutex_mod
from . import perf as perf_mod
from .columns import FAIL, INFO, INVOKE, NEM, OK, V_INT, V_OTHER, Columns, Unusual, index_dtype
from .history import TYPES
from .holds import NEVER
from .model import STRICT, STRICT_MODEL, LockModel
from .pairing import ANOMALIES, NEVER_RETURNED, Paired
from .results import FencingResult, MutexResult, PerfResult

REL_NONE, REL_OK, REL_FAIL, REL_INFO = range(4)
_REL_NAMES = (None, "ok", "fail", "info")


@dataclass
class Pairs:
    """Every client op paired with its completion, grouped by process in time order: ``inv``
    and ``pos`` are positions in the sorted history (``pos`` NEVER_RETURNED for an op that never
    completed, which then counts as ``info``). A completion's row is ``order[pos]``."""

    inv: np.ndarray
    pos: np.ndarray
    type: np.ndarray
    f: np.ndarray
    key: np.ndarray
    pgroup: np.ndarray  # a dense number per process
    procs: np.ndarray  # each pgroup's process

    def proc(self, i: Any) -> Any:
        """The process of pair(s) ``i``."""
        return self.procs[self.pgroup[i]]


class ColumnHistory:
    """What the columnar checkers share, each computed once: sorted times and indexes, the
    pairs, the holds."""

    def __init__(self, cols: Columns) -> None:
        self.c = cols
        self.ACQ, self.REL, self.RENEW = (cols.f_code(x) for x in ("acquire", "release", "renew"))

    @classmethod
    def of(cols: type[ColumnHistory], c: Columns) -> ColumnHistory:
        """The one ``ColumnHistory`` of these columns (the checkers and the availability
        figures share its pairs)."""
        ch = getattr(c, "_shared", None)
        if ch is None:
            ch = c._shared = cols(c)  # type: ignore[attr-defined]
        return ch

    def lock_only(self) -> None:
        """Raise ``Unusual`` unless every client op is a lock op (acquire, release, renew) or a
        write made under the lock (write, add)."""
        c = self.c
        known = {"acquire", "release", "renew", *fencing_mod.WRITE_FS}
        used = np.bincount(c.f[c.process != NEM], minlength=len(c.fs))
        client_fs = {c.fs[x] for x in np.flatnonzero(used)}
        if not client_fs <= known:
            raise Unusual(f"client ops other than lock ops: {sorted(client_fs - known)}")

    def t(self, pos: Any) -> Any:
        """The time at positions ``pos`` of the sorted history (not kept as a sorted copy of
        the time column: 8 bytes an op that a history of 10^7 ops cannot spare)."""
        return self.c.time[self.c.order[pos]]

    @cached_property
    def client_span(self) -> tuple[int, int] | None:
        """The first and last time of a client op; None when there is none."""
        return self.c.client_span()

    def op_at(self, pos: int) -> dict[str, Any]:
        return self.c.op(self.c.order[pos]).to_dict()

    @cached_property
    def pairs(self) -> Pairs:
        # Each temporary is freed once used and kept to the narrowest type: this pass's peak,
        # not its sum, is what a history of 10^7 ops adds to the columns.
        c = self.c
        g = c.by_process()
        m = len(g)
        small = index_dtype(m)
        p = c.process[g]
        new_p = p[1:] != p[:-1]
        ty = c.type[g]
        comp = ty != INVOKE
        last = np.ones(m, dtype=bool)
        last[:-1] = new_p
        j = np.flatnonzero(comp | last).astype(small)  # each op's completion, or its invocation
        del last
        first = np.ones(m, dtype=bool)
        first[1:] = new_p
        del new_p
        pgroup = np.cumsum(first, dtype=small)[j] - 1
        procs = p[first]
        del first, p
        is_comp = comp[j]
        del comp
        typ = np.where(is_comp, ty[j], INFO).astype(np.int8)
        del ty
        rank = c.rank
        pos = np.where(is_comp, rank[g[j]], NEVER_RETURNED).astype(small)
        j -= is_comp  # the invocation: the op before a completion
        del is_comp
        inv_row = g[j]
        del j
        inv = rank[inv_row].astype(small)
        # only pairing needs each row's position and the rows by process: freed (each is
        # recomputed if asked for again)
        c._rank = c.proc_order = None
        return Pairs(
            inv=inv,
            pos=pos,
            type=typ,
            f=c.f[inv_row],
            key=c.key[inv_row],
            pgroup=pgroup.astype(small, copy=False),
            procs=procs,
        )

    @cached_property
    def holds(self) -> Holds:
        return _holds(self)


@dataclass
class Holds:
    """The holds of ``checkers.holds`` as arrays, one element a hold, in start order; and the
    lock sweep's notes."""

    key: np.ndarray
    proc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    fence_row: np.ndarray
    rel: np.ndarray
    acq_inv: np.ndarray
    rel_inv: np.ndarray
    rel_done: np.ndarray
    renewed: np.ndarray
    stop: np.ndarray
    notes: list[str]
    by_key: np.ndarray
    pgroup: np.ndarray  # the holder's dense process number
    lock_order: np.ndarray  # the pairs of lock ops by (process, key, time)
    lock_group: np.ndarray  # their (process, key) as a dense number, in that order


def _first_in_runs(seg: np.ndarray) -> np.ndarray:
    """Indexes of the first element of each run of equal values of a sorted array."""
    if not len(seg):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))


def _holds(ch: ColumnHistory) -> Holds:
    # Temporaries are freed once used and kept narrow (positions, rows and indexes int32 below
    # 2^31 events): this pass's peak, not its sum, is what 10^7 ops add to the columns.
    P = ch.pairs
    lock = np.flatnonzero(np.isin(P.f, [x for x in (ch.ACQ, ch.REL, ch.RENEW) if x >= 0]))
    small = index_dtype(len(P.inv))
    lock = lock.astype(small)
    # anomalies: only "acted after info" can occur in a history the columns accept
    lp = P.pgroup[lock]
    lt = P.type[lock]
    acted = int(np.count_nonzero((lp[1:] == lp[:-1]) & (lt[:-1] == INFO)))
    del lt
    anomalies = dict.fromkeys(ANOMALIES, 0)
    anomalies["acted after info"] = acted
    notes = Paired([], anomalies).notes()
    # (process, key, time) order: pairs are by process in time order already, so a stable sort
    # by key within each process's run
    lk = P.key[lock]
    so = np.lexsort((lk, lp))
    e = lock[so]
    lp, lk = lp[so], lk[so]
    del so, lock
    # each (process, key) as a dense number, in that order
    new_g = np.ones(len(e), dtype=bool)
    new_g[1:] = (lp[1:] != lp[:-1]) | (lk[1:] != lk[:-1])
    del lp, lk
    grp = np.cumsum(new_g, dtype=small)
    del new_g
    F, T = P.f[e], P.type[e]
    inv, pos = P.inv[e], P.pos[e]
    ao = (F == ch.ACQ) & (T == OK)
    idx = np.arange(len(e), dtype=small)
    cur = np.maximum.accumulate(np.where(ao, idx, -1)) if len(e) else idx
    del idx
    valid = cur >= 0
    valid[valid] &= grp[cur[valid]] == grp[valid]
    rel = F == ch.REL
    if np.any(rel & ~valid & (T == OK)):
        raise Unusual("an ok release by a process that held nothing")
    hold_of = np.cumsum(ao, dtype=small) - 1  # each acquire ok's hold; an event's: via cur
    H = int(np.count_nonzero(ao))
    ao_i = np.flatnonzero(ao).astype(small)
    del ao
    start = pos[ao_i]
    acq_inv = inv[ao_i]
    hgrp = grp[ao_i]
    end = np.full(H, NEVER, dtype=np.int64)
    relc = np.zeros(H, dtype=np.int8)
    rel_inv = np.full(H, -1, dtype=small)
    rel_done = np.full(H, -1, dtype=small)
    stop = np.full(H, -1, dtype=small)
    renewed = np.full(H, -1, dtype=small)
    # releases of a hold, in order
    ri = np.flatnonzero(rel & valid).astype(small)
    del rel
    seg = hold_of[cur[ri]]
    f1 = _first_in_runs(seg)
    stop[seg[f1]] = inv[ri[f1]]
    first_rel_idx = np.full(H, len(e), dtype=small)
    first_rel_idx[seg[f1]] = ri[f1]
    del f1
    # the release that ends a hold: its first ok or info one; an ok one after it would override
    nf = T[ri] != FAIL
    rn, sn = ri[nf], seg[nf]
    fn = _first_in_runs(sn)
    later = np.ones(len(sn), dtype=bool)
    later[fn] = False
    if np.any(later & (T[rn] == OK)):
        raise Unusual("a second release overriding the first")
    del later
    ending_h, ending_e = sn[fn], rn[fn]
    del rn, sn, fn
    # a failed release before any ending one is remembered (its first)
    fl = ~nf
    rf, sf = ri[fl], seg[fl]
    del nf, fl, ri, seg
    ff = _first_in_runs(sf)
    relc[sf[ff]] = REL_FAIL
    rel_inv[sf[ff]] = inv[rf[ff]]
    rel_done[sf[ff]] = pos[rf[ff]]
    del rf, sf, ff
    relc[ending_h] = np.where(T[ending_e] == OK, REL_OK, REL_INFO)
    rel_inv[ending_h] = inv[ending_e]
    rel_done[ending_h] = pos[ending_e]
    end[ending_h] = inv[ending_e]
    del ending_h, ending_e
    # an ok renew of a hold not yet let go (before its first release) extends its lease
    rw = np.flatnonzero((F == ch.RENEW) & (T == OK) & valid)
    del F, T, valid
    if len(rw):
        hw = hold_of[cur[rw]]
        keep = rw < first_rel_idx[hw]
        rw, hw = rw[keep], hw[keep]
        renewed[hw] = inv[rw]  # fancy assignment: the last of each hold wins
        del hw, keep
    del rw, first_rel_idx, hold_of, cur, inv
    # a hold never ended whose holder got the lock again lasts as long as its next hold
    ended = end != NEVER
    k = np.where(ended, np.arange(H, dtype=small), H)
    del ended
    nxt = np.minimum.accumulate(k[::-1])[::-1] if H else k
    del k
    ok_n = nxt < H
    ok_n[ok_n] &= hgrp[nxt[ok_n]] == hgrp[ok_n]
    del hgrp
    end = np.where(ok_n, end[np.minimum(nxt, H - 1)] if H else end, NEVER)
    del ok_n, nxt
    # start order (the sweep's), and by key
    o = np.argsort(start, kind="stable").astype(small)
    pa = e[ao_i][o]  # each hold's acquire pair
    del ao_i
    key = P.key[pa]
    karr = np.zeros(len(ch.c.keys), dtype=small)  # key -> its first hold, in start order
    u, firsts = np.unique(key, return_index=True)
    karr[u] = firsts
    by_key = (
        np.lexsort((np.arange(H, dtype=small), karr[key])).astype(small)
        if H
        else np.zeros(0, dtype=small)
    )
    return Holds(
        key=key,
        proc=P.proc(pa),
        start=start[o],
        end=end[o],
        fence_row=ch.c.order[P.pos[pa]],  # an acquire's ok: its completion's row
        rel=relc[o],
        acq_inv=acq_inv[o],
        rel_inv=rel_inv[o],
        rel_done=rel_done[o],
        renewed=renewed[o],
        stop=stop[o],
        notes=notes,
        by_key=by_key,
        pgroup=P.pgroup[pa],
        lock_order=e,
        lock_group=grp,
    )


class _HoldDicts:
    """Report forms of holds (``checkers.holds.hold_dict``) and their ops, on demand."""

    def __init__(self, ch: ColumnHistory, hs: Holds) -> None:
        self.ch, self.hs = ch, hs

    def hold(self, i: int) -> dict[str, Any]:
        return self.holds(np.array([i]))[0]

    def holds(self, idx: np.ndarray) -> list[dict[str, Any]]:
        """``hold`` of the holds at ``idx``, from a few gathers rather than a dozen scalar
        lookups a hold (the results' list holds up to 20,000)."""
        ch, hs, c = self.ch, self.hs, self.ch.c
        s, end, ri = hs.start[idx], hs.end[idx], hs.rel_inv[idx]
        ended, released = end != NEVER, ri >= 0
        rows = zip(
            hs.key[idx].tolist(),
            hs.proc[idx].tolist(),
            ch.t(s).tolist(),
            ch.t(np.where(ended, end, 0)).tolist(),
            ended.tolist(),
            hs.fence_row[idx].tolist(),
            hs.rel[idx].tolist(),
            c.index_of(c.order[s]).tolist(),
            c.index_of(c.order[np.where(released, ri, 0)]).tolist(),
            released.tolist(),
            strict=True,
        )
        return [
            {
                "key": c.keys[k],
                "process": p,
                "start": t,
                "end": e if has_end else None,
                "fence": c.value(f),
                "release": _REL_NAMES[r],
                "acquire_index": a,
                "release_index": x if has_rel else None,
            }
            for k, p, t, e, has_end, f, r, a, x, has_rel in rows
        ]

    def positions(self, i: int) -> list[int]:
        hs = self.hs
        return [
            int(x) for x in (hs.acq_inv[i], hs.start[i], hs.rel_inv[i], hs.rel_done[i]) if x >= 0
        ]

    def ops(self, positions: list[int]) -> list[dict[str, Any]]:
        return [self.ch.op_at(x) for x in sorted(set(positions))]


def mutex(
    ch: ColumnHistory,
    model: LockModel = STRICT_MODEL,
    max_holds: int = 20000,
    limit: int = mutex_mod.MAX_VIOLATIONS,
) -> MutexResult:
    """``checkers.mutex.check`` over the columns."""
    hs = ch.holds
    hd = _HoldDicts(ch, hs)
    bk = hs.by_key
    a, b = bk[:-1], bk[1:]
    same = hs.key[a] == hs.key[b]
    a, b = a[same], b[same]
    other = hs.proc[a] != hs.proc[b]
    released = (hs.rel[a] == REL_OK) | (hs.rel[a] == REL_INFO)
    s = hs.start[b]
    kinds_arr = np.full(len(a), -1, dtype=np.int8)  # 0 overlap, 1 revoked, 2 early, 3 lapse
    if model.name == STRICT:
        bad = other & (s < hs.end[a])
        kinds_arr[bad] = np.where(released[bad], 0, 1)
        acting_mask = (kinds_arr == 1) & ((hs.stop[a] < 0) | (s < hs.stop[a]))
    else:
        lease_ns = model.lease_ns
        cand = other & ~(released & (s >= hs.end[a]))
        acting_now = ~((hs.stop[a] >= 0) & (hs.stop[a] <= s))
        kinds_arr[cand & acting_now] = np.where(released[cand & acting_now], 0, 1)
        rest = cand & ~acting_now
        if lease_ns is None:
            kinds_arr[rest] = 2
        else:
            lstart_pos = np.where(hs.renewed[a] >= 0, hs.renewed[a], hs.acq_inv[a])
            lstart = np.where(lstart_pos >= 0, ch.t(np.maximum(lstart_pos, 0)), 0)
            early = ch.t(s) < lstart + lease_ns
            kinds_arr[rest & early] = 2
            kinds_arr[rest & ~early] = 3
        acting_mask = kinds_arr == 1
    names = ("overlap", "revoked-while-held", mutex_mod.EARLY)
    viol = np.flatnonzero((kinds_arr >= 0) & (kinds_arr <= 2))
    kinds: Counter[str] = Counter()
    for code, n in zip(*np.unique(kinds_arr[viol], return_counts=True), strict=True):
        kinds[names[code]] = int(n)
    # Counter order as the object sweep fills it: first occurrence
    kinds = Counter({names[c]: kinds[names[c]] for c in _first_order(kinds_arr[viol])})
    bad_keys = len(np.unique(hs.key[a[viol]]))
    found = []
    for v in viol[:limit].tolist():
        i, j = int(a[v]), int(b[v])
        kind = names[kinds_arr[v]]
        d = {
            "kind": kind,
            "key": ch.c.keys[hs.key[i]],
            "first": hd.hold(i),
            "second": hd.hold(j),
            "ops": hd.ops(hd.positions(i) + hd.positions(j)),
        }
        if kind == "revoked-while-held":
            d["while_acting"] = bool(hs.stop[i] < 0 or hs.start[j] < hs.stop[i])
        found.append(d)
    lap = np.flatnonzero(kinds_arr == 3)
    H = len(hs.start)
    return mutex_mod.result(
        model=model,
        kinds=kinds,
        bad_keys=bad_keys,
        hold_count=H,
        holds=hd.holds(np.arange(min(H, max_holds))),
        nkeys=len(np.unique(hs.key)) if H else 0,
        violations=found,
        acting=int(np.count_nonzero(acting_mask)),
        lapse_count=len(lap),
        lapses=[
            {
                "key": ch.c.keys[hs.key[int(a[v])]],
                "first": hd.hold(int(a[v])),
                "second": hd.hold(int(b[v])),
            }
            for v in lap[: mutex_mod.MAX_LAPSES].tolist()
        ],
        notes=list(hs.notes),
    )


def _first_order(codes: np.ndarray) -> list[int]:
    """Distinct codes in order of first occurrence."""
    if not len(codes):
        return []
    u, first = np.unique(codes, return_index=True)
    return [int(x) for x in u[np.argsort(first)]]


def fencing(
    ch: ColumnHistory, enforced: bool = False, limit: int = fencing_mod.MAX_EXAMPLES
) -> FencingResult:
    """``checkers.fencing.check`` over the columns."""
    hs = ch.holds
    c = ch.c
    hd = _HoldDicts(ch, hs)
    fig = fencing_mod.FencingFigures()
    bk = hs.by_key
    rows = hs.fence_row[bk]
    vk = c.vkind[rows]
    if np.any(vk == V_OTHER) and any(
        fencing_mod._is_fence(c.others[int(r)]) for r in rows[vk == V_OTHER]
    ):
        raise Unusual("a fence past 64 bits")
    fenced = bk[vk == V_INT]
    fig.fenced = len(fenced)
    fv = c.vint[hs.fence_row[fenced]]
    same = hs.key[fenced][1:] == hs.key[fenced][:-1]
    back = np.flatnonzero(same & (fv[1:] <= fv[:-1]))
    fig.nbackwards = len(back)
    for x in back[:limit].tolist():
        fig.backwards.append(
            {"previous": hd.hold(int(fenced[x])), "hold": hd.hold(int(fenced[x + 1]))}
        )
    _writes(ch, fig, limit)
    return fencing_mod.result(fig, enforced)


def perf(ch: ColumnHistory) -> PerfResult:
    """``checkers.perf.check`` over the columns."""
    c = ch.c
    P = ch.pairs
    first, last = ch.client_span or (None, None)
    counts: Counter[tuple[str, str]] = Counter()
    # every client invocation is a pair's
    for code, n in enumerate(np.bincount(P.f, minlength=len(c.fs)).tolist()):
        if n:
            counts[(c.fs[code], "invoke")] += n
    pc = P.f.astype(np.int32) * 4 + P.type
    for code, n in enumerate(np.bincount(pc, minlength=4 * len(c.fs)).tolist()):
        if n:
            counts[(c.fs[code // 4], TYPES[code % 4])] += n
    del pc
    small = P.inv.dtype  # positions: int32 below 2^31 events
    acq = np.flatnonzero(P.f == ch.ACQ) if ch.ACQ >= 0 else np.zeros(0, dtype=np.int64)
    ainv, apos, aty = P.inv[acq], P.pos[acq], P.type[acq]
    del acq
    done = apos != NEVER_RETURNED
    dpos, dty = apos[done], aty[done]
    del apos, aty
    dtime = ch.t(dpos)
    ms = dtime - ch.t(ainv[done])
    ms = ms.astype(np.float64)
    ms /= 1e6
    latency = {"ok": _percentiles(ms[dty == OK]), "fail": _percentiles(ms[dty == FAIL])}
    # points by (time, ms, type name)
    tname_rank = np.array([0, 2, 0, 1], dtype=np.int8)  # ok > info > fail, as strings sort
    porder = _points_order(len(c), dpos, dtime, ms, tname_rank[dty])
    stp = max(1, -(-len(porder) // perf_mod.MAX_POINTS))
    sel = porder[::stp]
    del porder
    t_first = first or 0
    series = [
        [round((tt - t_first) / 1e9, 6), round(m, 3), TYPES[ty]]
        for tt, m, ty in zip(dtime[sel].tolist(), ms[sel].tolist(), dty[sel].tolist(), strict=True)
    ]
    del dtime, ms, sel
    # the longest wait: acquires in flight over positions
    # (positions are distinct: marks over the sorted history order the events without a sort)
    mark = np.zeros(len(c), np.int8)
    mark[ainv] = 1
    mark[dpos] = -1
    epos = np.flatnonzero(mark).astype(small)
    step = mark[epos]
    del mark
    okm = np.zeros(len(c), bool)
    okm[dpos[dty == OK]] = True
    eok = okm[epos]
    del okm, ainv, done, dpos, dty
    after = np.cumsum(step, dtype=small)  # acquires in flight: fewer than the events
    # the wait restarts when one begins with none in flight, or on a grant or the last's end
    reset = ((step > 0) & (after == step)) | ((step < 0) & (eok | (after == 0)))
    del eok
    ri = np.flatnonzero(reset)
    del reset
    trying = int(after[-1]) if len(after) else 0
    del after
    longest = (0, 0)
    since_final = 0
    if len(ri):
        rnow = ch.t(epos[ri])
        prev = np.concatenate(([0], rnow[:-1]))
        gaps = np.where(step[ri] < 0, rnow - prev, -1)
        k = int(np.argmax(gaps))
        if gaps[k] > 0:
            longest = (int(gaps[k]), int(prev[k]))
        since_final = int(rnow[-1])
    if trying and last is not None and last - since_final > longest[0]:
        longest = (last - since_final, since_final)
    first = first or 0
    return perf_mod.result(counts, latency, first, last, longest, series, stp)


def _points_order(
    n: int, pos: np.ndarray, time: np.ndarray, ms: np.ndarray, tname: np.ndarray
) -> np.ndarray:
    """The order of completions by (time, ms, type name), as ``np.lexsort`` would give it:
    positions (distinct, below ``n``) are in time order already, so only runs of equal times
    are sorted (after the positions: distinct, so any sort of them is the one order)."""
    small = index_dtype(n)
    order = np.argsort(pos).astype(small)
    t = time[order]
    brk = np.ones(len(t), bool)
    brk[1:] = t[1:] != t[:-1]
    run = np.cumsum(brk, dtype=small) - 1
    del brk, t
    tied = np.flatnonzero(np.bincount(run)[run] > 1) if len(run) else np.zeros(0, np.int64)
    # a few runs at a time (a chunk ends where a run does): the sort's temporaries stay small
    r = run[tied]
    cuts = np.searchsorted(r, r[np.arange(TIED_AT_ONCE, len(r), TIED_AT_ONCE)], "left")
    edges = np.unique(np.concatenate(([0], cuts, [len(r)])))
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        tt = tied[a:b]
        sub = order[tt]
        order[tt] = sub[np.lexsort((tname[sub], ms[sub], r[a:b]))]
    return order


TIED_AT_ONCE = 1 << 18  # completions of equal times ordered at once (``_points_order``)


def _percentiles(xs: np.ndarray) -> Any:
    """``checkers.perf.percentiles`` of an array (sorted here, nearest rank); the array is
    reordered in place."""
    if not len(xs):
        return perf_mod.percentiles([])
    n = len(xs)
    at = {q: max(0, int(np.ceil(q * n)) - 1) for q in (0.50, 0.95, 0.99)}
    s = xs
    s.partition(sorted({*at.values(), n - 1}))  # those ranks in place, no full sort

    return {
        "p50": round(float(s[at[0.50]]), 3),
        "p95": round(float(s[at[0.95]]), 3),
        "p99": round(float(s[at[0.99]]), 3),
        "max": round(float(s[n - 1]), 3),
        "count": n,
    }


def _last_before(
    comb: np.ndarray, group: np.ndarray, q_group: np.ndarray, q_pos: np.ndarray, n: int
) -> np.ndarray:
    """For each query, the index (into ``comb``, sorted ``group * n + position``) of the last
    element of its group at a position before ``q_pos``; -1 for none."""
    j = np.searchsorted(comb, q_group * n + q_pos, "left") - 1
    jj = np.maximum(j, 0)
    ok = (j >= 0) & (group[jj] == q_group) if len(comb) else np.zeros(len(q_pos), bool)
    return np.where(ok, j, -1)


def _writes(ch: ColumnHistory, fig: fencing_mod.FencingFigures, limit: int) -> None:
    """The write sweep of ``checkers.fencing.figures``: what had been granted, and written,
    when each write was invoked."""
    c = ch.c
    wf = [x for x in (c.f_code(f) for f in sorted(fencing_mod.WRITE_FS)) if x >= 0]
    if not wf:
        return
    P, hs = ch.pairs, ch.holds
    n = len(c) + 1
    nk = max(1, len(c.keys))
    if n * nk * (int(P.pgroup.max(initial=0)) + 1) >= 2**62:
        raise Unusual("too many ops, keys and processes to combine")
    w = np.flatnonzero(np.isin(P.f, wf))
    w_inv, w_pos, w_key = P.inv[w], P.pos[w], P.key[w].astype(np.int64)
    w_grp, w_type = P.pgroup[w].astype(np.int64), P.type[w]
    inv_row = c.order[w_inv]
    is_write = c.f[inv_row] == c.f_code("write")
    # latest hold on the key, and the writer's own latest hold on it, when the write was invoked
    hkey, hstart = hs.key.astype(np.int64), hs.start
    if not len(hstart):  # no hold: a sentinel one, before everything, that nobody owns
        hkey, hstart = np.array([-1], np.int64), np.array([-1], np.int64)
    o1 = np.lexsort((hstart, hkey))
    latest = _last_before(hkey[o1] * n + hstart[o1], hkey[o1], w_key, w_inv, n)
    latest_start = np.where(latest >= 0, hstart[o1][np.maximum(latest, 0)], -1)
    pk = (hs.pgroup.astype(np.int64) * nk + hkey) if len(hs.start) else np.array([-1], np.int64)
    o2 = np.lexsort((hstart, pk))
    own_i = _last_before(pk[o2] * n + hstart[o2], pk[o2], w_grp * nk + w_key, w_inv, n)
    own = np.where(own_i >= 0, o2[np.maximum(own_i, 0)], -1)  # the hold, in start order
    own_start = np.where(own >= 0, hstart[np.maximum(own, 0)], -1)
    # the write's fence: a write's value, an add's hold's fence
    hold_row = hs.fence_row[np.maximum(own, 0)] if len(hs.start) else np.full(len(w), -1)
    f_row = np.where(is_write, inv_row, np.where(own >= 0, hold_row, -1))
    f_kind = np.where(f_row >= 0, c.vkind[np.maximum(f_row, 0)], 0)
    if np.any(f_kind == V_OTHER) and any(
        fencing_mod._is_fence(c.others[int(r)]) for r in f_row[f_kind == V_OTHER]
    ):
        raise Unusual("a fence past 64 bits")
    fenced = f_kind == V_INT
    fence = np.where(fenced, c.vint[np.maximum(f_row, 0)], 0)
    # the highest fence of an ok write completed on the key before the invocation
    done = w_pos >= 0
    up = np.flatnonzero(done & (w_type == OK) & fenced)
    ranks, rinv = np.unique(fence[up], return_inverse=True)
    o3 = np.lexsort((w_pos[up], w_key[up]))
    uk, upos = w_key[up][o3], w_pos[up][o3]
    run = np.maximum.accumulate(uk * (len(ranks) + 1) + rinv[o3]) if len(up) else uk
    top_i = _last_before(uk * n + upos, uk, w_key, w_inv, n)
    has_top = top_i >= 0
    top = (
        np.where(has_top, ranks[run[np.maximum(top_i, 0)] % (len(ranks) + 1)], 0)
        if len(up)
        else np.zeros(len(w), np.int64)
    )
    revoked = (own >= 0) & (latest_start > own_start)
    lower = ~revoked & fenced & has_top & (fence < top)
    stale = revoked | lower
    err = c.error[c.order[np.maximum(w_pos, 0)]]
    stale_err = np.array([e.startswith("stale fence") for e in c.errors] + [False])
    rejected = done & (w_type == FAIL) & stale_err[err]
    counts = fig.counts
    counts["writes"] += int(np.count_nonzero(done))
    counts["fresh_rejected"] += int(np.count_nonzero(done & ~stale & rejected))
    outcome = np.where(w_type == OK, 0, np.where(rejected, 1, 2))
    names = ("accepted", "rejected", "unknown")
    for k, name in enumerate(names):
        counts[f"stale_{name}"] += int(np.count_nonzero(done & stale & (outcome == k)))
    ex = np.flatnonzero(done & stale)
    ex = ex[np.argsort(w_pos[ex], kind="stable")][:limit]
    for i in ex.tolist():
        k, pos = int(w_key[i]), int(w_pos[i])
        hi = _last_before(uk * n + upos, uk, np.array([k]), np.array([pos + 1]), n)[0]
        fig.examples.append(
            {
                "key": c.keys[k],
                "process": int(P.proc(w[i])),
                "fence": c.value(f_row[i]) if f_row[i] >= 0 else None,
                "reason": "revoked" if revoked[i] else "lower-fence",
                "outcome": names[outcome[i]],
                "highest_fence_written": int(ranks[run[hi] % (len(ranks) + 1)])
                if hi >= 0
                else None,
                "ops": [ch.op_at(int(w_inv[i])), ch.op_at(pos)],
            }
        )
