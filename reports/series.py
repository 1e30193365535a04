"""Acquires over time, from one pass over the history: throughput and latency quantiles per time
bucket, availability inside and outside fault windows, op counts.

Buckets aggregate, so the charts stay the same size for a 10-op or a 10^6-op history.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from checkers.history import NEMESIS, Op

from .faults import Period

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


@dataclass
class Availability:
    label: str
    seconds: float
    ok: int
    fail: int
    info: int

    @property
    def total(self) -> int:
        return self.ok + self.fail + self.info

    @property
    def ratio(self) -> str:
        return f"{self.ok / self.total:.1%}" if self.total else "—"

    @property
    def per_s(self) -> str:
        return f"{self.ok / self.seconds:.1f}" if self.seconds > 0 else "—"


MAX_WINDOWS = 20


def availability(s: Series, faults: Sequence[Period]) -> list[Availability]:
    """Acquires completed outside any fault, during any, then in each fault window (first 20)."""
    times = [t for t, _ in s.done]
    codes = [c for _, c in s.done]
    windows = [
        (p, p.start, p.end if p.end is not None else s.t_end)
        for p in faults
        if not p.one_shot and p.injected
    ]

    def tally(lo: int, hi: int) -> list[int]:
        c = [0, 0, 0]
        for x in codes[bisect_left(times, lo) : bisect_right(times, hi)]:
            c[x] += 1
        return c

    rows: list[Availability] = []
    inside = [0, 0, 0]
    inside_s = 0.0
    merged: list[list[int]] = []
    for _, lo, hi in sorted(windows, key=lambda w: w[1]):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    for lo, hi in merged:
        c = tally(lo, hi)
        inside = [a + b for a, b in zip(inside, c, strict=True)]
        inside_s += (hi - lo) / 1e9
    total = [codes.count(k) for k in (OK, FAIL, INFO)]
    outside = [a - b for a, b in zip(total, inside, strict=True)]
    span = (s.t_end - (s.first_client or 0)) / 1e9
    rows.append(Availability("outside faults", max(span - inside_s, 0.0), *outside))
    if windows:
        rows.append(Availability("during faults", inside_s, *inside))
    for p, lo, hi in windows[:MAX_WINDOWS]:
        label = f"{p.name} at {p.start / 1e9:.2f} s"
        rows.append(Availability(label, (hi - lo) / 1e9, *tally(lo, hi)))
    return rows


def op_counts(s: Series) -> list[tuple[str, dict[str, int], int]]:
    """Ops by function and outcome: (f, {type: n}, total)."""
    fs: dict[str, dict[str, int]] = {}
    for (f, t), n in s.counts.items():
        fs.setdefault(f, {})[t] = n
    return [(f, d, sum(d.values())) for f, d in sorted(fs.items())]
