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

from .history import NEMESIS, Op
from .holds import sort_ops
from .pairing import NEVER_RETURNED, pair
from .results import Percentiles, PerfResult, Valid

NAME = "perf"
MAX_POINTS = 5000


def percentiles(xs: list[float]) -> Percentiles:
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


def check(ops: Iterable[Op], *, presorted: bool = False, **_: Any) -> PerfResult:
    srt = list(ops) if presorted else sort_ops(ops)
    counts: Counter[tuple[str, str]] = Counter()
    lat: dict[str, list[float]] = {"ok": [], "fail": []}
    points: list[tuple[int, float, str]] = []
    first = last = None
    for op in srt:
        if op.process == NEMESIS:
            continue
        if first is None:
            first = op.time
        last = op.time
        if op.type == "invoke":
            counts[(op.f, "invoke")] += 1
    # Acquires in flight, as (position, +1 invoked | -1 returned, ok?), for the longest wait.
    events: list[tuple[int, int, bool]] = []
    for p, f, _key, t, inv, pos in pair(srt).pairs:
        counts[(f, t)] += 1
        if f != "acquire" or inv < 0:
            continue
        iop = srt[inv]
        if iop.type != "invoke" or iop.process != p:  # no invocation: no latency, no wait
            continue
        events.append((inv, 1, False))
        if pos == NEVER_RETURNED:
            continue  # still trying at the end
        done = srt[pos].time
        events.append((pos, -1, t == "ok"))
        ms = (done - iop.time) / 1e6
        if t in lat:
            lat[t].append(ms)
        points.append((done, ms, t))
    points.sort()
    trying = 0
    since = 0  # last successful acquire, or when clients started trying after a lull
    longest = (0, 0)  # (length ns, start ns)
    for pos, step, ok in sorted(events):
        now = srt[pos].time
        if step > 0:
            if trying == 0:
                since = now
            trying += 1
            continue
        trying -= 1
        if ok or trying == 0:
            if now - since > longest[0]:
                longest = (now - since, since)
            since = now
    if trying and last is not None and last - since > longest[0]:
        longest = (last - since, since)

    step = max(1, -(-len(points) // MAX_POINTS))
    first = first or 0
    series = [[round((t - first) / 1e9, 6), round(ms, 3), ty] for t, ms, ty in points[::step]]
    latency = {"ok": percentiles(lat["ok"]), "fail": percentiles(lat["fail"])}
    return result(counts, latency, first, last, longest, series, step)


def result(
    counts: Counter[tuple[str, str]],
    latency: dict[str, Percentiles],
    first: int,
    last: int | None,
    longest: tuple[int, int],
    series: list[list[Any]],
    step: int,
) -> PerfResult:
    """The perf result from either history path's figures (objects here, columns in
    ``checkers.colcheck``): ``counts`` by (f, type), client time span in ns, the longest wait
    (ns, from), the latency series sampled every ``step`` points."""
    span_s = ((last or 0) - first) / 1e9
    attempted = counts[("acquire", "invoke")]
    ok_acq = counts[("acquire", "ok")]
    by_f: dict[str, dict[str, int]] = {}
    for (f, ty), n in sorted(counts.items()):
        by_f.setdefault(f, {})[ty] = n
    if attempted == 0:
        valid: Valid = None
        summary = "no acquire attempts"
    elif ok_acq == 0:
        valid = "unknown"
        summary = f"no acquire succeeded out of {attempted}: nothing held, nothing to vouch for"
    else:
        valid = True
        p = latency["ok"]
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
        "acquire_latency_ms": latency,
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
