"""Verdicts from a history: mutex safety, fencing, performance; and how to combine them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.history import Op

from . import fencing, mutex, perf
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


def check_all(ops: Iterable[Op], *, fencing_enforced: bool = False) -> dict[str, Any]:
    """Run every checker over one history (sorted and swept once, shared)."""
    hs = extract(ops)
    results = {
        "mutex": mutex.check(hs.ops, holds=hs),
        "fencing": fencing.check(hs.ops, holds=hs, enforced=fencing_enforced),
        "perf": perf.check(hs.ops, presorted=True),
    }
    valid = combine(r["valid"] for r in results.values())
    word = verdict_word(valid)
    shown = [f"{n}: {r['summary']}" for n, r in results.items() if r["valid"] is not True]
    shown = shown or [f"mutex: {results['mutex']['summary']}"]
    return {"valid": valid, "summary": f"{word}; " + "; ".join(shown), "checkers": results}


__all__ = [
    "check_all",
    "combine",
    "exit_code",
    "fencing",
    "lacks_evidence",
    "mutex",
    "perf",
    "verdict_word",
]
