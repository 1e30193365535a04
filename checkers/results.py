"""The shapes of checker results and of ``results.json`` (docs/design.md, "Checkers").

A result stays a plain JSON-able dict, so ``results.json`` keeps the keys and values it always
had and every reader of a stored run keeps working; its shape is declared here, one
``TypedDict`` per checker, and ``RunResults`` for the composed result of a run. A verdict is
``Verdict`` in code and its JSON value in a result (``valid``): true, false, "unknown" or null.
``SCHEMA_VERSION`` is written in ``results.json``; its changelog is in docs/design.md.

Stored results may come from an older version or be edited by hand, so readers fetch a
checker's result through the accessors at the end (``mutex_result`` ...), which give None
for anything that is not a dict, and still read fields with ``.get``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Literal, NotRequired, TypedDict, cast

#: Written in results.json as ``schema_version``. Raise it when a key changes its meaning or
#: goes away (a new key is no new version: readers ignore what they do not know).
SCHEMA_VERSION = 1

#: A verdict as results.json holds it (``valid``).
Valid = bool | Literal["unknown"] | None


class Verdict(Enum):
    """A checker's or a run's verdict; its value is the word the harness prints."""

    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "not applicable"

    @classmethod
    def from_json(cls, valid: object) -> Verdict:
        """The verdict of a ``valid`` value. Anything but true, false and null is unknown: a
        value no checker writes (a hand-edited file, ``1``) vouches for nothing."""
        if valid is True:
            return cls.VALID
        if valid is False:
            return cls.INVALID
        if valid is None:
            return cls.NOT_APPLICABLE
        return cls.UNKNOWN

    def to_json(self) -> Valid:
        return _JSON[self]

    @property
    def word(self) -> str:
        return self.value

    @property
    def exit_code(self) -> int:
        """Jepsen's convention: 0 valid, 1 invalid, 2 unknown or not applicable."""
        return 0 if self is Verdict.VALID else 1 if self is Verdict.INVALID else 2

    @classmethod
    def combine(cls, verdicts: Iterable[Verdict]) -> Verdict:
        """Invalid beats unknown beats valid; not applicable is ignored; all of them not
        applicable (or none at all) is not applicable."""
        vs = [v for v in verdicts if v is not cls.NOT_APPLICABLE]
        if cls.INVALID in vs:
            return cls.INVALID
        if any(v is not cls.VALID for v in vs):
            return cls.UNKNOWN
        return cls.VALID if vs else cls.NOT_APPLICABLE


_JSON: dict[Verdict, Valid] = {
    Verdict.VALID: True,
    Verdict.INVALID: False,
    Verdict.UNKNOWN: "unknown",
    Verdict.NOT_APPLICABLE: None,
}


# --- what every checker's result holds -------------------------------------------------------


class Result(TypedDict):
    """The least a checker of a map returns; a checker's own result type extends it."""

    valid: Valid
    summary: str


class CheckerError(TypedDict):
    type: str  # the exception's class name
    message: str
    traceback: str


class CrashedResult(Result):
    """What ``checkers.compose`` records for a checker that raised (Jepsen's ``check-safe``):
    ``valid`` "unknown", ``summary`` "checker crashed: ExcType: msg"."""

    checker: str
    error: CheckerError


# --- shapes shared by the lock checkers ------------------------------------------------------


class Hold(TypedDict):
    """A hold as results show it (``checkers.holds.hold_dict``): times in ns since the run
    started, op indexes as recorded."""

    key: Any
    process: Any
    start: int
    end: int | None  # None: never ended
    fence: Any
    release: str | None  # its release's outcome: "ok", "info" (ended it), "fail"; None: none came
    acquire_index: int
    release_index: int | None


#: An op as results show it (``checkers.history.Op.to_dict``).
OpDict = dict[str, Any]


class LockDict(TypedDict):
    """The lock model a result was judged under (``checkers.model.LockModel.to_dict``)."""

    model: str
    expiry: str
    ttl_ms: float | None


# --- mutex ------------------------------------------------------------------------------------


class Violation(TypedDict):
    kind: str  # overlap, revoked-while-held, early-grant, release-by-non-owner
    key: Any
    first: Hold | None
    second: Hold | None
    ops: list[OpDict]
    while_acting: NotRequired[bool]  # revoked-while-held only


class Lapse(TypedDict):
    key: Any
    first: Hold
    second: Hold


class MutexResult(Result):
    checker: str
    hold_count: int
    holds: list[Hold]
    holds_truncated: bool
    keys: int
    violation_count: int
    violation_kinds: dict[str, int]
    revoked_while_acting: int
    violations: list[Violation]
    model: str
    lock: LockDict
    lapse_count: int
    lapses: list[Lapse]
    no_lapse_because: str | None
    notes: list[str]


# --- fencing ----------------------------------------------------------------------------------


class NonIncreasing(TypedDict):
    previous: Hold
    hold: Hold


class StaleWrite(TypedDict):
    key: Any
    process: Any
    fence: Any
    reason: str  # revoked, lower-fence
    outcome: str  # accepted, rejected, unknown
    highest_fence_written: Any
    ops: list[OpDict]  # its invocation and its completion


class FencingResult(Result):
    checker: str
    enforced: bool
    fenced_holds: int
    non_increasing: int
    non_increasing_examples: list[NonIncreasing]
    writes: int
    stale_accepted: int
    stale_rejected: int
    stale_unknown: int
    fresh_rejected: int
    stale_examples: list[StaleWrite]


# --- perf -------------------------------------------------------------------------------------


class Percentiles(TypedDict):
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    count: int


class Latencies(TypedDict):
    ok: Percentiles
    fail: Percentiles


class PerfResult(Result):
    checker: str
    span_s: float
    acquire_latency_ms: Latencies
    acquires_per_s: float | None
    releases_per_s: float | None
    attempted_acquires: int
    success_ratio: float | None
    counts: dict[str, dict[str, int]]  # f -> type -> ops
    longest_wait_s: float
    longest_wait_from_s: float | None
    series: list[list[Any]]  # [s since the first op, latency ms, type]
    series_step: int


# --- set (lost updates) -----------------------------------------------------------------------


class LostUpdate(TypedDict):
    key: Any
    element: Any
    process: Any
    invoke_time: int
    ok_time: int
    blame: NotRequired[str]  # "lock" or "store", when the history has lock ops


class SetCounts(TypedDict):
    attempted_count: int
    acknowledged_count: int
    unknown_outcome_count: int
    lost_count: int
    unexpected_count: int
    duplicated_count: int
    recovered_count: int
    failed_present_count: int
    acknowledged_during_final_read_count: int


class SetResult(Result, SetCounts):
    """Every key of the full result; a history with no add and no read gets only ``checker``,
    ``valid``, ``summary``, the counts and ``notes``."""

    checker: str
    blame: NotRequired[str | None]  # "lock", "store", "both"; None without lock ops
    lost_by_lock: NotRequired[int | None]
    lost_by_store: NotRequired[int | None]
    keys: NotRequired[int]
    keys_without_final_read: NotRequired[list[str]]
    lost: NotRequired[list[LostUpdate]]
    unexpected: NotRequired[list[dict[str, Any]]]  # key, element
    duplicated: NotRequired[list[dict[str, Any]]]  # key, element, times_read
    recovered: NotRequired[list[dict[str, Any]]]  # key, element, invoke_time
    unknown_because: NotRequired[list[str]]
    notes: list[str]
    non_durable: NotRequired[str]  # set by ``checkers.set.excuse``


# --- jobs -------------------------------------------------------------------------------------


class Execution(TypedDict):
    process: Any
    start: int
    end: int | None  # None: never completed


class DoubleSlot(TypedDict):
    slot: int
    executions: list[Execution]
    blame: NotRequired[str]  # "lock" or "scheduler", when the history has lock ops


class JobsResult(Result):
    """Every key of the full result; a history with no readable exec gets only ``checker``,
    ``valid``, ``summary``, ``unknown_because``, ``executions``, ``double_executions``,
    ``missed_slots`` and ``notes``."""

    checker: str
    unknown_because: list[str]
    unreadable_execs: NotRequired[int]
    period_ms: NotRequired[float | None]
    executions: int
    executed_slots: NotRequired[int]
    due_slots: NotRequired[int]
    double_executions: int
    extra_executions: NotRequired[int]
    blame: NotRequired[str | None]  # "lock", "scheduler", "both"; None without lock ops
    double_by_lock: NotRequired[int | None]
    double_by_scheduler: NotRequired[int | None]
    missed_slots: int
    overlapping_executions: NotRequired[int]
    overlap_ms: NotRequired[float]
    double_slots: NotRequired[list[DoubleSlot]]
    missed: NotRequired[list[int]]
    notes: list[str]


# --- availability in time (``checkers.availability.over_time``) ------------------------------


class TimeShare(TypedDict):
    seconds: float  # of the load span on this side
    available_share: float | None  # of key-time: held or grantable (None: no time, no key)
    unavailable_s: float  # key-seconds neither held nor grantable
    attempts: int  # acquires invoked on this side
    ok: int  # of them granted


class WindowShare(TimeShare):
    fault: str
    start_s: float
    end_s: float
    healed: bool  # False: the fault lasted to the end of the history
    heal_to_grant_s: float | None  # from the heal to the next grant (None: none came)


class AvailabilityInTime(TypedDict):
    """``results.json``'s ``availability``, written by the analyse stage; never a verdict."""

    keys: int  # keys some client tried to acquire: each counts for the whole span
    span_s: float  # the load: first client op to last
    prompt_ms: int
    inside: TimeShare
    outside: TimeShare
    windows: list[WindowShare]  # the first MAX_WINDOWS faults
    window_count: int
    heal_to_grant_s: dict[str, float | None]  # max and median over the healed windows
    backoff_ms: NotRequired[list[int] | None]  # the clients' backoff (config.json; None: none)


# --- a run ------------------------------------------------------------------------------------


class RunResults(TypedDict):
    """results.json: the composed result (``checkers.compose``) and what the analyse stage adds
    (``harness/run/analyse.py``)."""

    valid: Valid
    summary: str
    model: NotRequired[str]  # the lock model the checkers judged under
    checkers: dict[str, Result]  # name -> that checker's result (a crash: CrashedResult)
    unknown_because: NotRequired[list[str]]  # why not VALID (``checkers.lacks_evidence``)
    schema_version: NotRequired[int]
    ops_read: NotRequired[int]
    faults: NotRequired[dict[str, dict[str, Any]]]  # kind -> counts (``checkers.faults``)
    availability: NotRequired[AvailabilityInTime]  # in time, per fault window and outside
    partial: NotRequired[bool]
    problems: NotRequired[list[str]]
    problem_count: NotRequired[int]
    problem_lines: NotRequired[list[int]]
    duplicate_indexes: NotRequired[list[Any]]
    interrupted: NotRequired[bool]


# --- reading stored results -------------------------------------------------------------------


def checker_results(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every checker's result in a run's results, by name (those that are not dicts left out)."""
    ch = results.get("checkers")
    if not isinstance(ch, dict):
        return {}
    return {name: r for name, r in ch.items() if isinstance(r, dict)}


def checker_result(results: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The result of checker ``name`` in a run's results, or None (not run, or not a dict)."""
    ch = results.get("checkers")
    r = ch.get(name) if isinstance(ch, dict) else None
    return r if isinstance(r, dict) else None


def mutex_result(results: Mapping[str, Any]) -> MutexResult | None:
    return cast("MutexResult | None", checker_result(results, "mutex"))


def fencing_result(results: Mapping[str, Any]) -> FencingResult | None:
    return cast("FencingResult | None", checker_result(results, "fencing"))


def perf_result(results: Mapping[str, Any]) -> PerfResult | None:
    return cast("PerfResult | None", checker_result(results, "perf"))


def set_result(results: Mapping[str, Any]) -> SetResult | None:
    return cast("SetResult | None", checker_result(results, "set"))


def jobs_result(results: Mapping[str, Any]) -> JobsResult | None:
    return cast("JobsResult | None", checker_result(results, "jobs"))


def count(result: Mapping[str, Any] | None, field: str) -> int | None:
    """A count a result holds, as an int; None when it holds none (an older result, another
    workload's checker, a value that is not a number: ``true`` is no count)."""
    v = result.get(field) if result is not None else None
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
