"""Fault evidence: how many faults of each kind the nemesis injected and healed, read from the
history, and whether the run proves what a faulted run claims.

A ``start-X`` op of process ``"nemesis"`` that completed without an error put fault X in force,
unless its value says ``"injected": false`` (e.g. client-pause found no holder); one with an
error failed. A ``stop-X`` that completed without an error and with a value healed it. A fault
counts as injected only when it ran its course: a stop whose value says ``"cut_short": true``
(the end of the run healed it before its planned end, see ``harness.nemesis.schedule``) makes it
``cut_short`` instead, so a run whose only fault was cut short proves nothing about that fault.
Jepsen's bare ``start``/``stop`` count as fault "nemesis", and a history whose invocations are
``info`` (as Jepsen writes them) pairs each one with the next op of the same ``f``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .history import NEMESIS, Op

COUNTS = (
    "attempted",
    "injected",
    "cut_short",
    "failed",
    "not_injected",
    "healed",
    "heal_failed",
)


def count(ops: Iterable[Op]) -> dict[str, dict[str, Any]]:
    """Per fault kind: attempted, injected (and ran its course), cut_short, failed,
    not_injected, healed, heal_failed (and the first error, when one failed)."""
    per: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    in_force: set[str] = set()  # fault kinds whose last start put them in force
    for op in ops:
        if op.process != NEMESIS:
            continue
        f = f"{op.f}-{NEMESIS}" if op.f in ("start", "stop") else op.f
        what, _, name = f.partition("-")
        if what not in ("start", "stop") or not name:
            continue  # a one-shot fault: no start/stop pair to count
        c = per.setdefault(name, dict.fromkeys(COUNTS, 0))
        if op.type == "invoke" or f not in pending:
            pending.add(f)
            if what == "start":
                c["attempted"] += 1
            continue
        pending.discard(f)
        if what == "start":
            in_force.discard(name)
            if op.error is not None:
                c["failed"] += 1
                c.setdefault("first_error", op.error)
            elif isinstance(op.value, dict) and op.value.get("injected") is False:
                c["not_injected"] += 1
                c.setdefault("why_not", op.value.get("why"))
            else:
                c["injected"] += 1
                in_force.add(name)
            continue
        if name in in_force and isinstance(op.value, dict) and op.value.get("cut_short") is True:
            c["injected"] -= 1
            c["cut_short"] += 1
        in_force.discard(name)
        if op.error is not None or _unready(op.value):
            c["heal_failed"] += 1
            c.setdefault("first_heal_error", op.error or "the node did not come back ready")
        elif op.value is not None:
            c["healed"] += 1
    return per


def _unready(value: Any) -> bool:
    """A stop that ran but left its target unhealthy (a killed node that did not restart)."""
    return isinstance(value, dict) and (value.get("healed") is False or value.get("ready") is False)


def missing_evidence(
    faults: dict[str, dict[str, Any]], config: dict[str, Any] | None, load_s: float = 0.0
) -> list[str]:
    """Why a run that asked for faults (config.json's ``nemesis``) proves less than it claims:
    none went into force, none ran its course, or some injections failed. ``load_s``: how long
    the history spans."""
    reasons = []
    requested = list((config or {}).get("nemesis") or [])
    injected = sum(c["injected"] for c in faults.values())
    attempted = sum(c["attempted"] for c in faults.values())
    cut = [f"{c['cut_short']} {name}" for name, c in faults.items() if c.get("cut_short")]
    if requested and injected == 0 and cut:
        reasons.append(f"no fault ran its course: {', '.join(cut)} cut short by the end of the run")
    elif requested and injected == 0:
        reasons.append(
            "no fault was injected: " + _why_none(faults, config or {}, attempted, load_s)
        )
    for name, c in faults.items():
        if c["failed"]:
            reasons.append(
                f"{c['failed']} of {c['attempted']} {name} injection(s) failed: "
                f"{c.get('first_error')}"
            )
    return reasons


def _why_none(
    faults: dict[str, dict[str, Any]], config: dict[str, Any], attempted: int, load_s: float
) -> str:
    if attempted:
        firsts = [
            c.get("first_error") or c.get("why_not")
            for c in faults.values()
            if c.get("first_error") or c.get("why_not")
        ]
        return f"{attempted} attempt(s) did not take effect" + (f" ({firsts[0]})" if firsts else "")
    if isinstance(config.get("fault_not_started"), str):  # the schedule said why (schedule.py)
        return config["fault_not_started"]
    interval = config.get("nemesis_interval")
    limit = config.get("time_limit")
    if _num(limit) and _num(interval) and limit <= interval:
        return f"--time-limit {limit:g} s is not longer than --nemesis-interval {interval:g} s"
    if _num(interval):
        return (
            f"the load ended after {load_s:.3g} s, before the first fault was due "
            f"(--nemesis-interval {interval:g} s into the load)"
        )
    return "the history holds no nemesis op"


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def text(faults: dict[str, dict[str, Any]]) -> str:
    """One line: "kill: 3 injected, 3 healed; pause: 1 injected, 1 cut short, 2 healed"."""
    parts = []
    for name, c in faults.items():
        shown = [
            f"{c.get(k, 0)} {k.replace('_', ' ')}"
            for k in COUNTS[1:]
            if c.get(k) or k == "injected"
        ]
        parts.append(f"{name}: " + ", ".join(shown))
    return "; ".join(parts) or "none"
