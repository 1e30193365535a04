"""Near misses: how close a run that broke nothing came to a violation, from its history.

Under the lease model a violation needs a grant to another client while an earlier holder
still acted (two holders at once) or before the earlier lease could have run out (an early
grant). Two figures measure the distance, in ms, for a lock whose grants run out after a TTL:

- ``grant_margin_ms``: over every grant that followed a hold its holder did not certainly release
  first (a lapse), the smallest of (new grant's ``ok`` minus the earlier lease's earliest expiry,
  its acquire's invocation plus the TTL, extended by ok renewals) and (new grant's ``ok`` minus
  the moment the earlier holder stopped acting): 0 or less is a violation;
- ``acted_past_lease_ms``: the longest a holder went on acting (to its release's invocation, or
  the end of the history) after its lease's earliest expiry: a paused holder that woke.

Without a known TTL (a lock whose grants end with a session) the margin is only the second
gap, and ``acted_past_lease_ms`` is None; each is None when there is nothing to measure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from checkers.history import Op
from checkers.holds import ACQ_INV, END, PROC, REL, RENEWED, START, STOP, extract

ENDED_BY = ("ok", "info")


def measure(ops: Iterable[Op], ttl_ms: float | None) -> dict[str, float | None]:
    """The two near-miss figures of a history (see the module docstring)."""
    hs = extract(ops)
    srt = hs.ops
    if not srt:
        return {"grant_margin_ms": None, "acted_past_lease_ms": None}
    ttl_ns = ttl_ms * 1e6 if ttl_ms else None
    end_ns = srt[-1].time

    def expiry(h: list[Any]) -> float:
        assert ttl_ns is not None
        start = h[RENEWED] if h[RENEWED] >= 0 else h[ACQ_INV]
        return (srt[start].time if start >= 0 else srt[h[START]].time) + ttl_ns

    margin: float | None = None
    past: float | None = None
    for h in hs.holds if ttl_ns is not None else ():
        stop = srt[h[STOP]].time if h[STOP] >= 0 else end_ns
        acted = stop - expiry(h)
        past = acted if past is None else max(past, acted)
    for lst in hs.by_key.values():
        for a, b in zip(lst, lst[1:], strict=False):
            if a[PROC] == b[PROC] or (a[REL] in ENDED_BY and b[START] >= a[END]):
                continue  # handed over by a release: no lease was tested
            granted = srt[b[START]].time
            stopped = srt[a[STOP]].time if a[STOP] >= 0 else end_ns
            m = granted - stopped  # without a TTL: how close to two holders at once
            if ttl_ns is not None:
                m = min(m, granted - expiry(a))
            margin = m if margin is None else min(margin, m)
    ms = lambda v: None if v is None else round(v / 1e6, 3)  # noqa: E731
    return {"grant_margin_ms": ms(margin), "acted_past_lease_ms": ms(past)}


def of_run(run_dir: Any) -> dict[str, float | None]:
    """The near misses of a stored run (its TTL from config.json's lock record)."""
    import json
    from pathlib import Path

    from checkers.history import read

    d = Path(run_dir)
    try:
        config = json.loads((d / "config.json").read_text())
        ops = read(d / "history.jsonl").ops
    except (OSError, ValueError):
        return {"grant_margin_ms": None, "acted_past_lease_ms": None}
    lock = config.get("lock") or {}
    ttl = lock.get("ttl_ms") if lock.get("expiry") == "ttl" else None
    return measure(ops, ttl)
