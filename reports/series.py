"""Acquires over time, from one pass over the history: throughput and latency quantiles per time
bucket, op counts; and the availability table (in time, inside and outside fault windows).

Buckets aggregate, so the charts stay the same size for a 10-op or a 10^6-op history.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from checkers.columns import OpsView
from checkers.history import NEMESIS, Op

WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
MAX_BUCKETS = 300
OK, FAIL, INFO = 0, 1, 2
CODES = {"ok": OK, "fail": FAIL, "info": INFO}


@dataclass
class Series:
    width_s: float = 1.0
    t_end: int = 0  # ns, the last op's time
    first_client: int | None = None  # ns, the first client op
    rate: dict[str, list[float]] = field(default_factory=dict)  # per bucket, per second
    p50: list[float | None] = field(default_factory=list)  # ms, ok acquires per bucket
    p99: list[float | None] = field(default_factory=list)
    done: list[tuple[int, int]] = field(default_factory=list)  # (completion ns, code), sorted
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (f, type)
    acquires: int = 0  # completed acquires


def bucket_width(span_s: float) -> float:
    """One bucket a second; half a second for runs under 20 s, wider for long runs."""
    if span_s < 20:
        return 0.5
    for w in WIDTHS_S:
        if w >= 1 and span_s / w <= MAX_BUCKETS:
            return w
    return WIDTHS_S[-1] * math.ceil(span_s / WIDTHS_S[-1] / MAX_BUCKETS)


_f_type = attrgetter("f", "type")
_time = attrgetter("time")


def _rank(xs: list[float], q: float) -> float:
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


def compute(ops: Sequence[Op], t_end: int = 0) -> Series:
    """One pass: each acquire invocation is paired with the next completion of its process."""
    if isinstance(ops, OpsView) and ops.rows is None:  # a history in columns: read as columns
        return _compute_columns(ops, t_end)
    s = Series()
    s.counts = Counter(map(_f_type, ops))  # C loops: about 0.1 s a million ops
    last = max(t_end, max(map(_time, ops), default=0))
    first = min((op.time for op in ops if op.process != NEMESIS), default=None)
    pending: dict[Any, int] = {}  # process -> acquire invocation time
    done: list[tuple[int, int, float]] = []
    for op in ops:
        if op.f != "acquire":
            continue
        p = op.process
        if op.type == "invoke":
            pending[p] = op.time
            continue
        t0 = pending.pop(p, None)
        if t0 is not None:
            t = op.time
            done.append((t, CODES[op.type], (t - t0) / 1e6))
    s.t_end = last
    s.first_client = first
    s.acquires = len(done)
    done.sort()
    s.done = [(t, c) for t, c, _ in done]
    s.width_s = w = bucket_width(last / 1e9)
    n = max(1, math.ceil(last / 1e9 / w))
    per = {k: [0] * n for k in ("ok", "fail", "info")}
    lat: list[list[float]] = [[] for _ in range(n)]
    wns = w * 1e9
    names = ("ok", "fail", "info")
    for t, c, ms in done:
        b = min(int(t / wns), n - 1)
        per[names[c]][b] += 1
        if c == OK:
            lat[b].append(ms)
    s.rate = {k: [x / w for x in v] for k, v in per.items()}
    for xs in lat:
        xs.sort()
        s.p50.append(_rank(xs, 0.5) if xs else None)
        s.p99.append(_rank(xs, 0.99) if xs else None)
    return s


def _compute_columns(ops: OpsView, t_end: int) -> Series:
    """``compute`` of a history in columns (``checkers.columns``), with numpy; ``done`` is left
    empty (nothing reads it)."""
    import numpy as np

    from checkers.colcheck import ColumnHistory
    from checkers.columns import INVOKE, index_dtype

    c = ops.cols
    ch = ColumnHistory.of(c)
    s = Series()
    counts = np.zeros(4 * len(c.fs), np.int64)
    for sl in c.chunks():
        counts += np.bincount(c.f[sl].astype(np.int32) * 4 + c.type[sl], minlength=len(counts))
    for k, n in enumerate(counts.tolist()):
        if n:
            s.counts[(c.fs[k // 4], ("invoke", "ok", "fail", "info")[k % 4])] = n
    last = max(t_end, int(c.time.max()) if len(c) else 0)
    s.first_client = ch.client_span[0] if ch.client_span else None
    P = ch.pairs
    # temporaries freed once used and kept narrow: this pass's peak is what 10^7 ops add
    a = np.flatnonzero((P.f == ch.ACQ) & (P.pos >= 0) & (P.type != INVOKE))
    t = ch.t(P.pos[a])
    cc = np.array([0, OK, FAIL, INFO], dtype=np.int8)[P.type[a]]
    ms = t - ch.t(P.inv[a])
    del a
    ms = ms.astype(np.float64)
    ms /= 1e6
    s.t_end = last
    s.acquires = len(t)
    s.width_s = w = bucket_width(last / 1e9)
    n = max(1, math.ceil(last / 1e9 / w))
    b = np.minimum((t.astype(np.float64) / (w * 1e9)).astype(index_dtype(n)), n - 1)
    del t
    for name, k in CODES.items():
        s.rate[name] = [int(x) / w for x in np.bincount(b[cc == k], minlength=n)]
    ok = cc == OK
    okb, okms = b[ok], ms[ok]
    del b, ms, cc, ok
    # by bucket (a stable sort of small integers is a radix sort), then each bucket's two
    # nearest ranks picked in place: the same figures as sorting each bucket
    lo = np.argsort(okb, kind="stable")
    okb, okms = okb[lo], okms[lo]
    del lo
    firsts = np.searchsorted(okb, np.arange(n), "left")
    ends = np.searchsorted(okb, np.arange(n), "right")
    for i0, i1 in zip(firsts.tolist(), ends.tolist(), strict=True):
        m = i1 - i0
        if not m:
            s.p50.append(None)
            s.p99.append(None)
            continue
        r50, r99 = max(0, math.ceil(0.5 * m) - 1), max(0, math.ceil(0.99 * m) - 1)
        part = np.partition(okms[i0:i1], sorted({r50, r99}))
        s.p50.append(float(part[r50]))
        s.p99.append(float(part[r99]))
    return s


@dataclass
class Availability:
    """One row of the report's availability table: a side or a fault window."""

    label: str
    seconds: float
    share: float | None  # of key-time held or grantable
    unavailable_s: float
    attempts: int
    ok: int
    heal_to_grant_s: float | None = None
    healed: bool = False  # a window's row: the heal column applies

    @property
    def available(self) -> str:
        return f"{self.share:.1%}" if self.share is not None else "—"

    @property
    def heal(self) -> str:
        if not self.healed:
            return ""
        return f"{self.heal_to_grant_s:.2f} s" if self.heal_to_grant_s is not None else "no grant"


def availability_view(results: Mapping[str, Any], ops: Sequence[Op]) -> dict[str, Any]:
    """The availability table, in time (``checkers.availability.over_time``): ``availability``
    (rows: outside faults, during any, then each fault window), ``paced`` (how clients paced
    their retries, in words) and ``prompt_ms``. From results.json's ``availability``, or
    computed from the ops for results without it."""
    from checkers.availability import over_time

    got = results.get("availability")
    if not isinstance(got, dict) or "outside" not in got:
        got = dict(over_time(ops))
    rows = [_row("outside faults", got["outside"])]
    if got.get("window_count"):
        rows.append(_row("during faults", got["inside"]))
    for w in got.get("windows") or []:
        r = _row(f"{w['fault']} at {w['start_s']:.2f} s", w)
        r.heal_to_grant_s, r.healed = w.get("heal_to_grant_s"), True
        rows.append(r)
    b = got.get("backoff_ms") if "backoff_ms" in got else results.get("backoff_ms")
    if isinstance(b, list) and len(b) == 2:
        paced = f"clients backed off after failures: {b[0]} ms doubling to {b[1]} ms, jittered"
    else:
        paced = (
            "clients retried without backoff after failures (--backoff 0, or a run from before it)"
        )
    return {"availability": rows, "paced": paced, "prompt_ms": got.get("prompt_ms")}


def _row(label: str, d: Mapping[str, Any]) -> Availability:
    return Availability(
        label,
        float(d.get("seconds") or 0.0),
        d.get("available_share"),
        float(d.get("unavailable_s") or 0.0),
        int(d.get("attempts") or 0),
        int(d.get("ok") or 0),
    )


def op_counts(s: Series) -> list[tuple[str, dict[str, int], int]]:
    """Ops by function and outcome: (f, {type: n}, total)."""
    fs: dict[str, dict[str, int]] = {}
    for (f, t), n in s.counts.items():
        fs.setdefault(f, {})[t] = n
    return [(f, d, sum(d.values())) for f, d in sorted(fs.items())]
