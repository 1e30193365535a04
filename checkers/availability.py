"""Availability of the lock inside fault windows versus outside them, from the history.

A fault window runs from the invocation of a ``start-X`` nemesis op that put fault X in force
(completed without an error, and not ``"injected": false``) to the completion of the next
``stop-X`` (or the end of the history). An acquire attempt belongs inside when it was invoked in
a window. Per side: attempts, successes, success ratio, successful acquires per second of that
side's time, and the latency of successful acquires (p50, p99). Never a verdict.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

from .history import NEMESIS, Op
from .perf import percentiles

SIDES = ("inside", "outside")


def windows(ops: list[Op]) -> list[tuple[int, int]]:
    """Merged, sorted fault windows (ns) of a history (ops in any order)."""
    srt = sorted((op for op in ops if op.process == NEMESIS), key=lambda o: (o.time, o.index))
    end = max((op.time for op in ops), default=0)
    pending: dict[str, Op] = {}  # f -> its invocation
    open_: dict[str, int] = {}  # fault name -> window start
    spans: list[tuple[int, int]] = []
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
            spans.append((open_.pop(name), op.time))
    spans += [(t, end) for t in open_.values()]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _inside(spans: list[tuple[int, int]], starts: list[int], t: int) -> bool:
    i = bisect_right(starts, t) - 1
    return i >= 0 and t <= spans[i][1]


def measure(ops: Iterable[Op], *, samples: bool = False) -> dict[str, Any]:
    """Per side: attempts, ok, success_ratio, ok_per_s, seconds, latency_ms {p50, p99}; with
    ``samples`` also every successful acquire's latency (ms), to pool over runs."""
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
    out: dict[str, Any] = {"windows": len(spans)}
    for s in SIDES:
        p = percentiles(lat[s])
        out[s] = {
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
