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

Two more come from the fences of the writes (the protected resource's view, as
``checkers.fencing`` sweeps it), for a lock that hands out fence tokens:

- ``stale_write_margin_ms``: over fenced writes, the smallest (the moment the resource first
  accepted a higher fence on the write's key minus the write's invocation): how close a write
  came to arriving after its successor's, i.e. to being stale. Below 0 it was stale
  (``lower-fence``): a woken holder's write overtaken by the next holder's;
- ``fence_gap``: over fenced writes to a key the resource had already accepted a fenced write
  of, the smallest (the write's fence minus the highest fence accepted there): the token's
  headroom. 1 is the usual next hold; 0 another write of the same hold; below 0 a token that went
  back (a counter a failover or a restart lost) or a stale write.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

from checkers.history import NEMESIS, Op
from checkers.holds import ACQ_INV, END, FENCE, KEY, PROC, REL, RENEWED, START, STOP, Holds, extract
from checkers.pairing import pair

ENDED_BY = ("ok", "info")
WRITE_FS = frozenset(("write", "add"))  # as checkers.fencing: an add's fence is its hold's
FIGURES = ("grant_margin_ms", "acted_past_lease_ms", "stale_write_margin_ms", "fence_gap")


def measure(ops: Iterable[Op], ttl_ms: float | None) -> dict[str, float | None]:
    """The near-miss figures of a history (see the module docstring)."""
    hs = extract(ops)
    srt = hs.ops
    if not srt:
        return dict.fromkeys(FIGURES)
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
    stale, gap = fences(hs)
    return {
        "grant_margin_ms": ms(margin),
        "acted_past_lease_ms": ms(past),
        "stale_write_margin_ms": ms(stale),
        "fence_gap": gap,
    }


def _fence(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def fences(hs: Holds) -> tuple[float | None, int | None]:
    """(smallest stale-write margin in ns, smallest fence gap) over the fenced writes of a
    history's holds (see the module docstring); None when there is nothing to measure."""
    srt = hs.ops
    starts = {h[START]: h for h in hs.holds}
    answers = {pos: inv for _p, _f, _k, _t, inv, pos in pair(srt, WRITE_FS).pairs if pos >= 0}
    mine: dict[tuple[Any, Any], int] = {}  # (process, key) -> start of its latest hold
    pending: dict[int, tuple[Any, int]] = {}  # write invocation position -> (key, fence)
    writes: list[tuple[Any, int, int]] = []  # (key, fence, invocation time)
    accepted: dict[Any, list[tuple[int, int]]] = {}  # key -> (ok time, fence), in time order
    top: dict[Any, int] = {}  # key -> highest fence of an accepted write
    gap: int | None = None
    for pos, op in enumerate(srt):
        if op.process == NEMESIS:
            continue
        if op.f == "acquire":
            h = starts.get(pos)
            if h is not None:
                mine[(h[PROC], h[KEY])] = pos
            continue
        if op.f not in WRITE_FS:
            continue
        if op.type == "invoke":
            own = mine.get((op.process, op.key))
            fence = op.value if op.f == "write" else starts[own][FENCE] if own is not None else None
            if _fence(fence):
                hi = top.get(op.key)
                if hi is not None:
                    gap = fence - hi if gap is None else min(gap, fence - hi)
                writes.append((op.key, fence, op.time))
                pending[pos] = (op.key, fence)
            continue
        done = pending.pop(answers.get(pos, -1), None)
        if done is not None and op.type == "ok":
            key, fence = done
            top[key] = max(top.get(key, fence), fence)
            accepted.setdefault(key, []).append((op.time, fence))
    # the first moment each key's resource held a fence above f: a running maximum, bisected
    highest = {k: list(accumulate((f for _t, f in a), max)) for k, a in accepted.items()}
    stale: float | None = None
    for key, fence, t in writes:
        i = bisect_right(highest.get(key, []), fence)
        if i < len(highest.get(key, [])):
            m = accepted[key][i][0] - t
            stale = m if stale is None else min(stale, m)
    return stale, gap


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
        return dict.fromkeys(FIGURES)
    lock = config.get("lock") or {}
    ttl = lock.get("ttl_ms") if lock.get("expiry") == "ttl" else None
    return measure(ops, ttl)
