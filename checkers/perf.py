"""Performance and liveness of the lock, from the history: latencies, throughput, waits.

valid: None when nobody tried to acquire; "unknown" when there were acquire attempts and none
succeeded (a lock that never grants is not unsafe, but then the safety checks had nothing to
look at, so nothing can be vouched for); True otherwise. Performance never makes a run invalid.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from harness.history import NEMESIS, Op

from .holds import sort_ops

NAME = "perf"
MAX_POINTS = 5000


def percentiles(xs: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99/max of ``xs`` (any order)."""
    if not xs:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    s = sorted(xs)
    n = len(s)

    def rank(q: float) -> float:
        return round(s[max(0, math.ceil(q * n) - 1)], 3)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(s[-1], 3),
        "count": n,
    }


def check(ops: Iterable[Op], *, presorted: bool = False, **_: Any) -> dict[str, Any]:
    srt = list(ops) if presorted else sort_ops(ops)
    counts: Counter[tuple[str, str]] = Counter()
    lat: dict[str, list[float]] = {"ok": [], "fail": []}
    points: list[tuple[int, float, str]] = []
    pending: dict[Any, Op] = {}
    trying = 0  # acquires in flight
    since = 0  # last successful acquire, or when clients started trying after a lull
    longest = (0, 0)  # (length ns, start ns)
    first = last = None
    for op in srt:
        if op.process == NEMESIS:
            continue
        t = op.time
        if first is None:
            first = t
        last = t
        if op.type == "invoke":
            prev = pending.get(op.process)
            if prev is not None:  # a foreign history reused a busy process: the old op is info
                counts[(prev.f, "info")] += 1
                trying -= prev.f == "acquire"
            pending[op.process] = op
            counts[(op.f, "invoke")] += 1
            if op.f == "acquire":
                if trying == 0:
                    since = t
                trying += 1
            continue
        counts[(op.f, op.type)] += 1
        inv = pending.pop(op.process, None)
        if op.f != "acquire" or inv is None or inv.f != "acquire":
            continue
        trying -= 1
        ms = (t - inv.time) / 1e6
        if op.type in lat:
            lat[op.type].append(ms)
        points.append((t, ms, op.type))
        if op.type == "ok" or trying == 0:
            if t - since > longest[0]:
                longest = (t - since, since)
            since = t
    for op in pending.values():  # never completed: info
        counts[(op.f, "info")] += 1
    if trying and last is not None and last - since > longest[0]:
        longest = (last - since, since)

    first = first or 0
    span_s = ((last or 0) - first) / 1e9
    attempted = counts[("acquire", "invoke")]
    ok_acq = counts[("acquire", "ok")]
    step = max(1, -(-len(points) // MAX_POINTS))
    series = [[round((t - first) / 1e9, 6), round(ms, 3), ty] for t, ms, ty in points[::step]]
    by_f: dict[str, dict[str, int]] = {}
    for (f, ty), n in sorted(counts.items()):
        by_f.setdefault(f, {})[ty] = n
    if attempted == 0:
        valid: bool | str | None = None
        summary = "no acquire attempts"
    elif ok_acq == 0:
        valid = "unknown"
        summary = f"no acquire succeeded out of {attempted}: nothing held, nothing to vouch for"
    else:
        valid = True
        p = percentiles(lat["ok"])
        rate = f"{ok_acq / span_s:.1f}/s" if span_s > 0 else "n/a"
        summary = (
            f"{ok_acq}/{attempted} acquires ok, {rate}; latency p50 {p['p50']} ms, "
            f"p99 {p['p99']} ms; longest wait {longest[0] / 1e9:.3f} s"
        )
    return {
        "checker": NAME,
        "valid": valid,
        "summary": summary,
        "span_s": round(span_s, 6),
        "acquire_latency_ms": {"ok": percentiles(lat["ok"]), "fail": percentiles(lat["fail"])},
        "acquires_per_s": round(ok_acq / span_s, 3) if span_s > 0 else None,
        "releases_per_s": round(counts[("release", "ok")] / span_s, 3) if span_s > 0 else None,
        "attempted_acquires": attempted,
        "success_ratio": round(ok_acq / attempted, 6) if attempted else None,
        "counts": by_f,
        "longest_wait_s": round(longest[0] / 1e9, 6),
        "longest_wait_from_s": round((longest[1] - first) / 1e9, 6) if longest[0] else None,
        "series": series,
        "series_step": step,
    }
