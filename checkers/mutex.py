"""Mutex safety: did two processes ever hold one lock at once? (owner-aware Knossos mutex)

The history is linearizable iff, per key, holds (see ``checkers.holds``) are pairwise disjoint
and no ``ok`` release came from a process that held nothing. Sorted by start, holds overlap
somewhere iff some hold overlaps the next one to start, so one sort and one sweep decide it.

One violation is reported per hold that someone else broke into (with its first intruder), and
one per non-owner release:

- ``overlap``: the intruder's acquire returned before the first holder invoked its release;
- ``revoked-while-held``: the first holder's release failed or never came (the lock left its
  owner unreleased) and the intruder acquired it afterwards; the holder itself acquiring it
  again is no intruder (one owner: ``checkers.holds``);
- ``release-by-non-owner``: an ``ok`` release by a process that held nothing; ``first`` is the
  latest hold on that key before it (whose lock it released), ``second`` is null.

A revoked-while-held violation is ``while_acting`` when the intruder's acquire returned before
the first holder invoked its release (or it never did): both clients then acted as holder at
once (a paused holder that wakes and writes). Otherwise the lock was taken only after its holder
had let go, yet before any release took effect (Jepsen's etcd case): still a violation of the
mutex model, but no two clients acted at once. ``revoked_while_acting`` counts the former.

That is the ``strict`` model. Under the ``lease`` model (``checkers.model``) a grant to another
client while an earlier hold was not certainly released is judged by what its holder was doing
and what its lease allowed:

- the new grant returned before the earlier holder invoked its release: two holders at once,
  ``overlap`` or ``revoked-while-held`` (always ``while_acting``), as above;
- ``early-grant``: the earlier holder had stopped acting, but its lease could not yet have run
  out (no TTL; or the new grant returned before the earlier acquire's invocation plus the TTL,
  extended by its recorded ``ok`` renewals): a server that forgot the grant, a clock jump, a
  failover that lost it;
- otherwise a *lapse*: the lease ran out after its holder stopped acting without a successful
  release (``lapse_count``, with examples in ``lapses``): a lease doing its job, no violation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .history import Op
from .holds import (
    ACQ_INV,
    END,
    PROC,
    REL,
    RENEWED,
    START,
    STOP,
    Holds,
    extract,
    hold_dict,
    hold_positions,
)
from .model import STRICT, STRICT_MODEL, LockModel
from .results import MutexResult

NAME = "mutex"
MAX_VIOLATIONS = 100
MAX_LAPSES = 20
EARLY = "early-grant"


def _ops_around(positions: Iterable[int], ops: list[Op]) -> list[dict[str, Any]]:
    return [ops[x].to_dict() for x in sorted(set(positions))]


ENDED_BY = ("ok", "info")  # the releases that end a hold; after "fail" or none it was revoked


def _while_acting(a: list[Any], b: list[Any]) -> bool:
    """Did ``b`` acquire before ``a`` invoked its release (positions follow time)?"""
    return a[STOP] < 0 or b[START] < a[STOP]


Found = list[tuple[str, Any, list[Any], list[Any] | None, list[int]]]


def _strict(
    hs: Holds, found: Found, kinds: Counter[str], bad_keys: set[Any], limit: int = MAX_VIOLATIONS
) -> int:
    """The strict sweep: adjacent holds by start. Returns how many revoked holds' holders went
    on acting."""
    acting = 0  # revoked-while-held with both acting as holder at once
    for key, lst in hs.by_key.items():
        for i in range(len(lst) - 1):
            a = lst[i]
            b = lst[i + 1]
            if b[START] < a[END] and b[PROC] != a[PROC]:  # a lock given again to its holder
                # is one owner (see checkers.holds); it spans every later hold of its own
                kind = "revoked-while-held" if a[REL] not in ENDED_BY else "overlap"
                kinds[kind] += 1
                acting += kind == "revoked-while-held" and _while_acting(a, b)
                bad_keys.add(key)
                if len(found) < limit:
                    found.append((kind, key, a, b, hold_positions(a) + hold_positions(b)))
    return acting


def _lease(
    hs: Holds,
    lease_ns: int | None,
    found: Found,
    kinds: Counter[str],
    bad_keys: set[Any],
    lapses: list[tuple[list[Any], list[Any]]],
    limit: int = MAX_VIOLATIONS,
) -> tuple[int, int]:
    """The lease sweep: each hold against the one before it on its key, as in the strict
    sweep (every earlier hold leaves the comparison once it certainly ended, lapsed, passed to
    its own holder's next grant, or was broken into, so the one before is the only one left).
    Returns (revoked holds whose holder went on acting, lapses)."""
    srt = hs.ops
    acting = nlapses = 0
    for key, lst in hs.by_key.items():
        for i in range(len(lst) - 1):
            a = lst[i]
            b = lst[i + 1]
            s = b[START]
            if a[PROC] == b[PROC]:
                continue  # given again to its own holder: ownership goes on in b
            released = a[REL] in ENDED_BY  # certainly or possibly, at its END
            if released and s >= a[END]:
                continue
            if not 0 <= a[STOP] <= s:  # b's grant returned while a still acted
                kind = "overlap" if released else "revoked-while-held"
            elif lease_ns is None or srt[s].time < _lease_start(a, srt) + lease_ns:
                kind = EARLY  # a had stopped, but its grant could not yet have run out
            else:  # the lease ran out after its holder let go: no violation
                nlapses += 1
                if len(lapses) < MAX_LAPSES:
                    lapses.append((a, b))
                continue
            kinds[kind] += 1
            acting += kind == "revoked-while-held"
            bad_keys.add(key)
            if len(found) < limit:
                found.append((kind, key, a, b, hold_positions(a) + hold_positions(b)))
    return acting, nlapses


def _lease_start(a: list[Any], srt: list[Op]) -> int:
    """When the lease of hold ``a`` began its last term: its acquire's invocation (0 when the
    invocation is unknown: the grant may have come at any time before) or its latest ok renew's
    invocation."""
    start = a[RENEWED] if a[RENEWED] >= 0 else a[ACQ_INV]
    return srt[start].time if start >= 0 else 0


def check(
    ops: Iterable[Op],
    *,
    max_holds: int = 20000,
    holds: Holds | None = None,
    model: LockModel = STRICT_MODEL,
    limit: int = MAX_VIOLATIONS,
    **_: Any,
) -> MutexResult:
    """Check mutual exclusion per key under ``model`` (strict by default: a bare history with
    no TTL known). ``holds`` may pass an ``extract`` result to reuse; ``limit``: how many
    violations are listed (all are counted)."""
    hs = holds if holds is not None else extract(ops)
    srt = hs.ops
    found: Found = []
    kinds: Counter[str] = Counter()
    bad_keys: set[Any] = set()
    lapses: list[tuple[list[Any], list[Any]]] = []
    nlapses = 0
    if model.name == STRICT:
        acting = _strict(hs, found, kinds, bad_keys, limit)
    else:
        acting, nlapses = _lease(hs, model.lease_ns, found, kinds, bad_keys, lapses, limit)
    for key, _p, inv, pos, cur in hs.bad_releases:
        kinds["release-by-non-owner"] += 1
        bad_keys.add(key)
        if len(found) < limit:
            around = [inv, pos] + (hold_positions(cur) if cur is not None else [])
            found.append(("release-by-non-owner", key, cur, None, around))  # type: ignore[arg-type]
    violations = [
        {
            "kind": kind,
            "key": key,
            "first": None if a is None else hold_dict(a, srt),
            "second": None if b is None else hold_dict(b, srt),
            "ops": _ops_around(pos, srt),
            **({"while_acting": _while_acting(a, b)} if kind == "revoked-while-held" else {}),
        }
        for kind, key, a, b, pos in found
    ]
    return result(
        model=model,
        kinds=kinds,
        bad_keys=len(bad_keys),
        hold_count=len(hs.holds),
        holds=[hold_dict(h, srt) for h in hs.holds[:max_holds]],
        nkeys=len(hs.by_key),
        violations=violations,
        acting=acting,
        lapse_count=nlapses,
        lapses=[
            {"key": a[0], "first": hold_dict(a, srt), "second": hold_dict(b, srt)}
            for a, b in lapses
        ],
        notes=list(hs.notes),
    )


def result(
    *,
    model: LockModel,
    kinds: Counter[str],
    bad_keys: int,
    hold_count: int,
    holds: list[dict[str, Any]],
    nkeys: int,
    violations: list[dict[str, Any]],
    acting: int,
    lapse_count: int,
    lapses: list[dict[str, Any]],
    notes: list[str],
) -> MutexResult:
    """The mutex result and its summary, from the figures of either history path (objects here,
    columns in ``checkers.colcheck``); ``holds`` is the listed prefix of ``hold_count``."""
    count = sum(kinds.values())
    if count:
        parts = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        summary = (
            f"{count} violation{'s' * (count != 1)} on {bad_keys} key{'s' * (bad_keys != 1)}: "
            f"{parts}"
        )
    else:
        summary = (
            f"no violation: {hold_count} holds on {nkeys} key{'s' * (nkeys != 1)} "
            "were disjoint, every release by its owner"
        )
    if lapse_count:
        summary += (
            f"; {lapse_count} lease{'s' * (lapse_count != 1)} lapsed (ran out after the holder "
            "had stopped, its release refused or never taking effect): not a violation"
        )
    return {
        "checker": NAME,
        "valid": count == 0,
        "summary": summary,
        "hold_count": hold_count,
        "holds": holds,
        "holds_truncated": hold_count > len(holds),
        "keys": nkeys,
        "violation_count": count,
        "violation_kinds": dict(kinds),
        "revoked_while_acting": acting,
        "violations": violations,  # type: ignore[typeddict-item]
        "model": model.name,
        "lock": model.to_dict(),
        "lapse_count": lapse_count,
        "lapses": lapses,  # type: ignore[typeddict-item]
        "no_lapse_because": model.why_no_lapse(),
        "notes": notes,
    }


def acted_at_once(result: Mapping[str, Any]) -> int | None:
    """How often two clients acted as holder at once in a mutex result: its overlaps and its
    revoked holds whose holder went on acting. The rest of its violations are locks taken after
    their holder stopped but before a release took effect: invalid, yet nobody acted twice.
    None when the result does not say (written before ``revoked_while_acting`` existed)."""

    def count(v: Any) -> int:
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    kinds, acting = result.get("violation_kinds"), result.get("revoked_while_acting")
    if not isinstance(kinds, dict) or isinstance(acting, bool) or not isinstance(acting, int):
        return None
    return count(kinds.get("overlap")) + min(count(kinds.get("revoked-while-held")), acting)
