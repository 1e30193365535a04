"""Fencing: do tokens of successive holds strictly increase, and what did stale writes do?

A write (the protected resource, at the end of a critical section) carries the fence of its hold.
It is *stale* when, at its invocation,

- ``revoked``: another process had been granted a later hold of that key (its own hold was
  taken away), or
- ``lower-fence``: its fence is below the highest fence of an ``ok`` write of that key that had
  completed.

A Jepsen set ``add`` under a lock (the ``lock-set`` workload: the element written to the store)
is a write too; its fence is that of its process's hold of the key.

Stale writes the resource accepted (``ok``) are those fencing would have rejected; with
``enforced=True`` (the resource checks fences) any of them makes the history invalid. Rejections
are ``fail`` writes whose error starts with "stale fence".

With no fence token on any ``ok`` acquire the lock offers no fencing: valid is None (not
applicable), though stale writes are still counted, since a resource without fencing takes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .history import NEMESIS, Op
from .holds import FENCE, PROC, START, Holds, extract, hold_dict
from .pairing import pair
from .results import FencingResult, Valid

NAME = "fencing"
MAX_EXAMPLES = 20
WRITE_FS = frozenset(("write", "add"))


def _is_fence(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(slots=True)
class FencingFigures:
    """What ``figures`` found: fenced holds, tokens that did not increase, writes and stale
    writes by outcome (capped examples of each)."""

    fenced: int = 0  # holds with a fence token
    nbackwards: int = 0  # holds whose token did not exceed the previous one of their key
    backwards: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("writes", "stale_accepted", "stale_rejected", "stale_unknown", "fresh_rejected"), 0
        )
    )
    examples: list[dict[str, Any]] = field(default_factory=list)


def check(
    ops: Iterable[Op],
    *,
    enforced: bool = False,
    holds: Holds | None = None,
    limit: int = MAX_EXAMPLES,
    **_: Any,
) -> FencingResult:
    """``limit``: how many examples of each finding are listed (all are counted)."""
    return result(figures(ops, holds=holds, limit=limit), enforced)


def result(fig: FencingFigures, enforced: bool) -> FencingResult:
    """The fencing result of ``fig`` (both history paths: objects and ``checkers.colcheck``)."""
    valid, summary = describe(fig, enforced)
    c = fig.counts
    return {
        "checker": NAME,
        "valid": valid,
        "summary": summary,
        "enforced": enforced,
        "fenced_holds": fig.fenced,
        "non_increasing": fig.nbackwards,
        "non_increasing_examples": fig.backwards,  # type: ignore[typeddict-item]
        "writes": c["writes"],
        "stale_accepted": c["stale_accepted"],
        "stale_rejected": c["stale_rejected"],
        "stale_unknown": c["stale_unknown"],
        "fresh_rejected": c["fresh_rejected"],
        "stale_examples": fig.examples,  # type: ignore[typeddict-item]
    }


def figures(
    ops: Iterable[Op], *, holds: Holds | None = None, limit: int = MAX_EXAMPLES
) -> FencingFigures:
    """Every figure of the fencing check (pure: neither the ops nor ``holds`` change), whether
    or not the resource enforced the tokens."""
    hs = holds if holds is not None else extract(ops)
    srt = hs.ops
    fig = FencingFigures()
    backwards = fig.backwards
    for lst in hs.by_key.values():
        prev = None
        for h in lst:
            if not _is_fence(h[FENCE]):
                continue
            fig.fenced += 1
            if prev is not None and h[FENCE] <= prev[FENCE]:
                fig.nbackwards += 1
                if len(backwards) < limit:
                    backwards.append({"previous": hold_dict(prev, srt), "hold": hold_dict(h, srt)})
            prev = h

    # Sweep for writes: what had been granted, and written, when each write was invoked.
    latest: dict[Any, int] = {}  # key -> start position of its latest hold
    mine: dict[tuple[Any, Any], int] = {}  # (process, key) -> start of that process's latest hold
    top: dict[Any, int] = {}  # key -> highest fence of a completed ok write
    starts = {h[START]: h for h in hs.holds}
    # which completion answers which write invocation (checkers.pairing): completion -> invoke
    answers = {pos: inv for _p, _f, _k, _t, inv, pos in pair(srt, WRITE_FS).pairs if pos >= 0}
    pending: dict[int, tuple[Any, Any, str | None]] = {}  # invoke position -> (key, fence, why)
    counts = fig.counts
    examples = fig.examples
    for pos, op in enumerate(srt):
        p = op.process
        if p == NEMESIS:
            continue
        if op.f == "acquire":
            held = starts.get(pos)
            if held is not None:
                latest[held[0]] = pos
                mine[(held[PROC], held[0])] = pos
            continue
        if op.f not in WRITE_FS:
            continue
        key = op.key
        if op.type == "invoke":
            own = mine.get((p, key))
            if op.f == "write":
                fence = op.value
            else:  # an add's value is its element: the fence is its hold's
                fence = starts[own][FENCE] if own is not None else None
            why = None
            hi = top.get(key)
            if own is not None and latest.get(key, -1) > own:
                why = "revoked"
            elif _is_fence(fence) and hi is not None and fence < hi:
                why = "lower-fence"
            pending[pos] = (key, fence, why)
            continue
        inv = answers.get(pos)
        if inv is None:  # a completion with no write invocation
            continue
        pend = pending.pop(inv, None)
        if pend is None:
            continue
        key, fence, why = pend
        counts["writes"] += 1
        rejected = op.type == "fail" and (op.error or "").startswith("stale fence")
        if op.type == "ok" and _is_fence(fence):
            top[key] = max(top.get(key, fence), fence)
        if why is None:
            counts["fresh_rejected"] += rejected
            continue
        outcome = "accepted" if op.type == "ok" else "rejected" if rejected else "unknown"
        counts[f"stale_{outcome}"] += 1
        if len(examples) < limit:
            examples.append(
                {
                    "key": key,
                    "process": p,
                    "fence": fence,
                    "reason": why,
                    "outcome": outcome,
                    "highest_fence_written": top.get(key),
                    "ops": [srt[inv].to_dict(), op.to_dict()],
                }
            )
    return fig


def describe(fig: FencingFigures, enforced: bool) -> tuple[Valid, str]:
    """The verdict and its summary: not applicable without tokens; invalid when tokens did not
    increase, or when the resource enforced them and still accepted a stale write."""
    acc, rej = fig.counts["stale_accepted"], fig.counts["stale_rejected"]
    stale_text = []
    if acc:
        tail = "although fencing was enforced" if enforced else "fencing would have rejected them"
        stale_text.append(f"{acc} stale write{'s' * (acc != 1)} accepted: {tail}")
    if rej:
        stale_text.append(f"{rej} stale write{'s' * (rej != 1)} rejected by fencing")
    if fig.fenced == 0:
        return None, "; ".join(["no fence tokens: this lock offers no fencing", *stale_text])
    parts = []
    if fig.nbackwards:
        parts.append(f"fence tokens did not increase {fig.nbackwards} times")
    parts += stale_text
    summary = "; ".join(parts) or "fence tokens strictly increased; no stale writes"
    return fig.nbackwards == 0 and not (enforced and acc), summary
