"""Verdicts from a history: mutex safety, fencing, performance, lost updates, scheduled jobs;
which of them a history calls for, and how to combine them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.history import Op

from . import faults, fencing, jobs, mutex, perf
from . import set as set_checker
from .holds import extract

Valid = bool | str | None


def combine(valids: Iterable[Valid]) -> Valid:
    """False beats "unknown" beats True; None (not applicable) is ignored; all None -> None."""
    vs = [v for v in valids if v is not None]
    if any(v is False for v in vs):
        return False
    if any(v is not True for v in vs):
        return "unknown"
    return True if vs else None


def exit_code(valid: Valid) -> int:
    """Jepsen's convention: 0 valid, 1 invalid, 2 unknown or not applicable."""
    return 0 if valid is True else 1 if valid is False else 2


VERDICT_WORDS = {True: "valid", False: "invalid", None: "not applicable"}


def verdict_word(valid: Valid) -> str:
    return VERDICT_WORDS.get(valid, "unknown")  # type: ignore[arg-type]


def lacks_evidence(results: dict[str, Any], reason: str) -> None:
    """Record why a run proves less than was asked (unreadable lines, no fault fired, cut short).

    A violation found stays INVALID (what was read proves it); anything else becomes UNKNOWN: the
    harness never says VALID without evidence. Reasons accumulate in ``unknown_because``.
    """
    reasons = results.setdefault("unknown_because", [])
    if reason not in reasons:
        reasons.append(reason)
    if results.get("valid") is not False:
        results["valid"] = "unknown"
        summary = str(results.get("summary", ""))
        head, _, rest = summary.partition("; ")
        results["summary"] = "unknown (" + "; ".join(reasons) + ")" + (f"; {rest}" if rest else "")


# Which ops call for which checkers: a history is checked for what it contains, so a bare
# Jepsen set history is not passed by a mutex checker that found no lock ops to look at.
CHECKERS_FOR_OPS: dict[str, tuple[str, ...]] = {
    "acquire": ("mutex", "fencing", "perf"),
    "release": ("mutex", "fencing", "perf"),
    "add": ("set",),
    "read": ("set",),
    "exec": ("jobs",),
}
ORDER = ("mutex", "fencing", "perf", "set", "jobs")


def select(ops: Iterable[Op]) -> list[str]:
    """The checkers the ops of a history call for, in report order (none for no known op)."""
    fs = frozenset(op.f for op in ops)
    wanted = {name for f in fs for name in CHECKERS_FOR_OPS.get(f, ())}
    return [name for name in ORDER if name in wanted]


def check_all(
    ops: Iterable[Op], *, fencing_enforced: bool = False, names: list[str] | None = None
) -> dict[str, Any]:
    """Run the checkers a history calls for (or ``names``) over it (sorted and swept once).

    A history with no op any checker knows is not applicable (valid None, exit 2), never VALID.
    """
    ops = list(ops)
    names = select(ops) if names is None else names
    results: dict[str, dict[str, Any]] = {}
    if {"mutex", "fencing", "perf"} & frozenset(names):
        hs = extract(ops)
        if "mutex" in names:
            results["mutex"] = mutex.check(hs.ops, holds=hs)
        if "fencing" in names:
            results["fencing"] = fencing.check(hs.ops, holds=hs, enforced=fencing_enforced)
        if "perf" in names:
            results["perf"] = perf.check(hs.ops, presorted=True)
    if "set" in names:
        results["set"] = set_checker.check(ops)
    if "jobs" in names:
        results["jobs"] = jobs.check(ops)
    valid = combine(r["valid"] for r in results.values())
    word = verdict_word(valid)
    shown = [f"{n}: {r['summary']}" for n, r in results.items() if r["valid"] is not True]
    shown = shown or [f"{n}: {r['summary']}" for n, r in results.items()][:1]
    if not results:
        shown = ["no acquire, release, add, read or exec op: nothing to check"]
    return {"valid": valid, "summary": f"{word}; " + "; ".join(shown), "checkers": results}


__all__ = [
    "check_all",
    "combine",
    "exit_code",
    "faults",
    "fencing",
    "jobs",
    "lacks_evidence",
    "mutex",
    "perf",
    "select",
    "set_checker",
    "verdict_word",
]
