"""Verdicts from a history: mutex safety, fencing, performance, lost updates, scheduled jobs;
which of them a history calls for, and how to combine them.

Checkers are found through the ``harness.checkers`` entry point group, as backends, workloads,
nemeses and stores are through theirs: each entry is a ``CheckerSpec`` (the built-in ones in
``checkers/builtin.py``), loaded when first needed, never at import (``builtin`` imports this
package)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from . import colcheck, faults, fencing, jobs, mutex, perf
from . import set as set_checker
from .columns import OpsView, Unusual, present_fs
from .history import Op
from .holds import Holds, extract, sort_ops
from .model import STRICT_MODEL, LockModel
from .results import SCHEMA_VERSION, CrashedResult, Result, RunResults, Valid, Verdict


def combine(valids: Iterable[Valid]) -> Valid:
    """False beats "unknown" beats True; None (not applicable) is ignored; all None -> None."""
    return Verdict.combine(map(Verdict.from_json, valids)).to_json()


def exit_code(valid: Valid) -> int:
    """Jepsen's convention: 0 valid, 1 invalid, 2 unknown or not applicable."""
    return Verdict.from_json(valid).exit_code


def verdict_word(valid: Valid) -> str:
    """valid, invalid, unknown, not applicable."""
    return Verdict.from_json(valid).word


def lacks_evidence(results: RunResults | dict[str, Any], reason: str) -> None:
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


class History:
    """One history as the checkers of a map see it: sorted by (time, index) once, what
    several checkers derive from it (the holds) computed once and shared (``derive``), and the
    lock model it is judged under (``checkers.model``).

    A history read in columns (``checkers.columns.OpsView``) is kept as columns: the lock
    checkers judge them (``checkers.colcheck``) and ``ops``, the sorted ``Op`` list, is built
    only if a checker asks for it (one that reads no columns, or a history they cannot judge
    exactly)."""

    def __init__(
        self, ops: Iterable[Op], *, presorted: bool = False, model: LockModel = STRICT_MODEL
    ) -> None:
        self.model = model
        self._derived: dict[Callable[..., Any], Any] = {}
        self._source: Iterable[Op] | None = None
        self._ops: list[Op] | None = None
        self.columns: Any = None  # a colcheck.ColumnHistory, or None
        if isinstance(ops, OpsView) and ops.rows is None:
            ch = colcheck.ColumnHistory.of(ops.cols)
            try:
                ch.lock_only()
                self.columns = ch
            except Unusual:
                pass
        if self.columns is not None:
            self._source = ops
        else:
            self._ops = list(ops) if presorted else sort_ops(ops)

    @property
    def ops(self) -> list[Op]:
        if self._ops is None:
            self._ops = sort_ops(self._source or ())
        return self._ops

    def derive(self, fn: Callable[[list[Op]], Any]) -> Any:
        """``fn(sorted ops)``, computed once per history."""
        if fn not in self._derived:
            self._derived[fn] = fn(self.ops)
        return self._derived[fn]

    def columnar(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(columns)`` when the history is in columns and ``fn`` can judge it exactly;
        else None (the caller takes the object path)."""
        if self.columns is None:
            return None
        try:
            return fn(self.columns)
        except Unusual:
            return None


#: A checker in a map: the shared history in, a result with ``valid`` and ``summary`` out (its
#: own ``checkers.results`` type).
Checker = Callable[[History], Result]
CheckerMap = Mapping[str, Checker]

NOTHING_TO_CHECK = "no acquire, release, add, read or exec op: nothing to check"
MAX_ERROR = 200  # characters of an exception's message in a summary


def crashed(name: str, e: Exception) -> CrashedResult:
    """The result of checker ``name`` that raised ``e``: unknown, with the error."""
    msg = str(e)
    msg = msg if len(msg) <= MAX_ERROR else msg[: MAX_ERROR - 3] + "..."
    what = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return {
        "checker": name,
        "valid": "unknown",
        "summary": f"checker crashed: {what}",
        "error": {
            "type": type(e).__name__,
            "message": str(e),
            "traceback": "".join(traceback.format_exception(e)),
        },
    }


def compose(checkers: CheckerMap) -> Callable[..., RunResults]:
    """Jepsen's ``compose``: one checker from a map of named ones. Its result holds every
    checker's result under ``checkers``, their combined ``valid``, the lock model they judged
    under, and a summary naming those that are not valid (or, when all are, the first one). An
    empty map is not applicable.

    Each checker runs guarded (Jepsen's ``check-safe``): one that raises gets an unknown result
    with its error (``crashed``), the others' results are kept, and the run is never VALID: its
    ``unknown_because`` names the crashed checker. An INVALID found by another checker stands.
    """

    def check(ops: Iterable[Op], model: LockModel = STRICT_MODEL) -> RunResults:
        h = History(ops, model=model)
        results: dict[str, Result] = {}
        crashes: list[str] = []
        for name, c in checkers.items():
            try:
                results[name] = c(h)
            except Exception as e:  # a bug in one checker must not cost the others' findings
                results[name] = r = crashed(name, e)
                crashes.append(f"the {name} {r['summary']}")
        valid = combine(r["valid"] for r in results.values())
        shown = [f"{n}: {r['summary']}" for n, r in results.items() if r["valid"] is not True]
        if not shown and results:
            first = next(iter(results))
            shown = [f"{first}: {results[first]['summary']}"]
        if not results:
            shown = [NOTHING_TO_CHECK]
        summary = f"{verdict_word(valid)}; " + "; ".join(shown)
        out: RunResults = {
            "valid": valid,
            "summary": summary,
            "model": model.name,
            "checkers": results,
        }
        for reason in crashes:
            lacks_evidence(out, reason)
        return out

    return check


def _holds(srt: list[Op]) -> Holds:
    return extract(srt, presorted=True)


def relisted(ops: Iterable[Op], model: LockModel, first: Mapping[str, Any], limit: int) -> Result:
    """``first`` (a mutex or fencing result of ``ops`` under ``model``) again, its findings
    listed up to ``limit`` (a result lists ``mutex.MAX_VIOLATIONS``, ``fencing.MAX_EXAMPLES``):
    what ``checkers.starvation`` places in time when a run found more than its result lists.
    Holds are not listed again."""
    name = first.get("checker")
    if name not in ("mutex", "fencing"):
        raise ValueError(f"only mutex and fencing results are listed again, not {name!r}")
    h = History(ops, model=model)
    if name == "mutex":
        return _mutex_of(h, max_holds=0, limit=limit)
    return _fencing_of(h, first.get("enforced") is True, limit=limit)


def _mutex_of(h: History, **listing: int) -> Result:
    """The mutex result of ``h``, over its columns when it has them; ``listing``: ``limit`` and
    ``max_holds``, as ``mutex.check`` takes them."""
    got = h.columnar(lambda c: colcheck.mutex(c, h.model, **listing))
    return got or mutex.check(h.ops, holds=h.derive(_holds), model=h.model, **listing)


def _fencing_of(h: History, enforced: bool, **listing: int) -> Result:
    """The fencing result of ``h``, over its columns when it has them; ``listing``: ``limit``."""
    got = h.columnar(lambda c: colcheck.fencing(c, enforced, **listing))
    return got or fencing.check(h.ops, holds=h.derive(_holds), enforced=enforced, **listing)


def lock_checkers(*, fencing_enforced: bool = False) -> dict[str, Checker]:
    """The checker map of a lock history: mutual exclusion, fencing, performance (over the
    history's columns when it has them, ``checkers.colcheck``)."""

    def _fencing(h: History) -> Result:
        return _fencing_of(h, fencing_enforced)

    def _perf(h: History) -> Result:
        return h.columnar(colcheck.perf) or perf.check(h.ops, presorted=True)

    return {"mutex": _mutex_of, "fencing": _fencing, "perf": _perf}


GROUP = "harness.checkers"


@dataclass(frozen=True)
class CheckerSpec:
    """One registered checker: ``make(fencing_enforced=...)`` gives its entry of a checker map;
    ``reads_ops`` are the op kinds (``f``) that call for it in a bare history (so a Jepsen set
    history is not passed by a mutex checker that found no lock op to look at); ``order`` is its
    place in reports (lower first)."""

    name: str
    make: Callable[..., Checker]
    reads_ops: tuple[str, ...]
    order: int


@cache
def checker_specs() -> dict[str, CheckerSpec]:
    """Every installed checker by name, in report order (the first entry of a name wins)."""
    specs: dict[str, CheckerSpec] = {}
    for ep in entry_points(group=GROUP):
        if ep.name not in specs:
            specs[ep.name] = ep.load()
    return dict(sorted(specs.items(), key=lambda kv: kv[1].order))


def checkers_for_op(f: str) -> tuple[str, ...]:
    """The checkers an op kind calls for, in report order (none for an op no checker reads)."""
    return tuple(n for n, s in checker_specs().items() if f in s.reads_ops)


def select(ops: Iterable[Op]) -> list[str]:
    """The checkers the ops of a history call for, in report order (none for no known op)."""
    fs = frozenset(present_fs(ops) if isinstance(ops, OpsView) else (op.f for op in ops))
    return [n for n, s in checker_specs().items() if not fs.isdisjoint(s.reads_ops)]


def checker_map(names: Iterable[str], *, fencing_enforced: bool = False) -> dict[str, Checker]:
    """The checker map of these checker names, in report order (see ``checker_specs``)."""
    wanted = frozenset(names)  # (``set`` is the set checker's module here)
    return {
        n: s.make(fencing_enforced=fencing_enforced)
        for n, s in checker_specs().items()
        if n in wanted
    }


def check_all(
    ops: Iterable[Op],
    *,
    fencing_enforced: bool = False,
    names: list[str] | None = None,
    model: LockModel = STRICT_MODEL,
) -> RunResults:
    """Run the checkers a history calls for (or ``names``) over it (sorted and swept once).

    A history with no op any checker knows is not applicable (valid None, exit 2), never VALID.
    """
    ops = list(ops)
    names = select(ops) if names is None else names
    return compose(checker_map(names, fencing_enforced=fencing_enforced))(ops, model)


__all__ = [
    "SCHEMA_VERSION",
    "Checker",
    "CheckerMap",
    "CheckerSpec",
    "History",
    "LockModel",
    "check_all",
    "checker_map",
    "checker_specs",
    "checkers_for_op",
    "combine",
    "compose",
    "exit_code",
    "faults",
    "fencing",
    "jobs",
    "lacks_evidence",
    "lock_checkers",
    "mutex",
    "perf",
    "select",
    "set_checker",
    "Valid",
    "Verdict",
    "verdict_word",
]
