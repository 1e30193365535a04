"""The jobs checker (at-most-once scheduled work): hand-made edge cases, and property tests
against a plain brute-force model written here."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

import checkers
from checkers import jobs
from checkers.history import Op

MS = 1_000_000
P = 10  # period, ms


def ops_of(raw: list[tuple[int, Any, str, str, Any]]) -> list[Op]:
    """Ops from (time ms, process, type, f, value), sorted by time (stable)."""
    raw = sorted(raw, key=lambda r: r[0])
    return [Op(i, t * MS, p, ty, f, "job", v) for i, (t, p, ty, f, v) in enumerate(raw)]


def run(p: int, slot: int, start: int, end: int | None, outcome: str = "ok") -> list[tuple]:
    v = {"slot": slot, "period": P}
    out = [(start, p, "invoke", "exec", v)]
    return out + ([(end, p, outcome, "exec", v)] if end is not None else [])


def span(first: int, last: int) -> list[tuple]:
    """Lock ops that mark when clients ran (the due window)."""
    return [(first, 99, "invoke", "acquire", None), (last, 99, "fail", "acquire", None)]


def test_each_slot_once_is_valid() -> None:
    raw = span(0, 40) + run(0, 0, 1, 3) + run(1, 1, 11, 13) + run(0, 2, 21, 23) + run(1, 3, 31, 33)
    r = jobs.check(ops_of(raw))
    assert r["valid"] is True and r["double_executions"] == 0 and r["missed_slots"] == 0
    assert r["period_ms"] == P and r["due_slots"] == 4
    assert r["summary"] == "each of 4 executed slots ran once; no slot missed"


def test_double_execution_is_invalid_with_its_overlap() -> None:
    raw = span(0, 20) + run(0, 0, 1, 8) + run(1, 0, 5, 9) + run(0, 1, 11, 12)
    r = jobs.check(ops_of(raw))
    assert r["valid"] is False and r["double_executions"] == 1 and r["extra_executions"] == 1
    assert r["overlapping_executions"] == 1 and r["overlap_ms"] == 3.0
    assert [e["process"] for e in r["double_slots"][0]["executions"]] == [0, 1]
    assert "1 of 2 executed slots ran more than once" in r["summary"]


def test_double_without_overlap_is_still_double() -> None:
    raw = span(0, 20) + run(0, 0, 1, 2) + run(1, 0, 6, 7)
    r = jobs.check(ops_of(raw))
    assert r["valid"] is False and r["overlapping_executions"] == 0


def test_missed_slots_are_availability_not_invalid() -> None:
    raw = span(0, 50) + run(0, 0, 1, 2) + run(0, 3, 31, 32)
    r = jobs.check(ops_of(raw))
    assert r["valid"] is True and r["missed"] == [1, 2, 4] and r["missed_slots"] == 3
    assert "3 of 5 due slots never ran" in r["summary"]


def test_info_fail_and_unfinished_executions_count() -> None:
    raw = span(0, 20) + run(0, 0, 1, 2, "info") + run(1, 0, 3, 4, "fail") + run(2, 1, 11, None)
    r = jobs.check(ops_of(raw))
    assert r["executions"] == 3 and r["double_executions"] == 1


def test_lone_completion_with_duration() -> None:
    v = {"slot": 0, "period": P, "duration": 5}
    raw = span(0, 10) + [(8, 0, "ok", "exec", v)] + run(1, 0, 4, 6)
    r = jobs.check(ops_of(raw))
    assert r["double_executions"] == 1 and r["overlap_ms"] == 2.0


def test_slots_on_another_clock_fall_back_to_the_executed_range() -> None:
    base = 170_000_000  # wall-clock slots, far from the history's clock
    raw = span(0, 50) + run(0, base, 1, 2) + run(0, base + 2, 3, 4)
    r = jobs.check(ops_of(raw))
    assert r["missed"] == [base + 1] and r["notes"]


def test_period_parameter_and_missing_period() -> None:
    raw = span(0, 40) + [(1, 0, "invoke", "exec", {"slot": 0}), (2, 0, "ok", "exec", {"slot": 0})]
    raw += [(21, 0, "invoke", "exec", {"slot": 2})]
    r = jobs.check(ops_of(raw))
    assert r["period_ms"] is None and r["missed"] == [1] and r["notes"]
    r = jobs.check(ops_of(raw), period_ms=10)
    assert r["missed"] == [1, 3]


def test_not_a_jobs_history_and_bad_values() -> None:
    assert jobs.check([])["valid"] is None
    r = jobs.check(ops_of([(1, 0, "invoke", "exec", "slot five")]))
    assert r["valid"] == "unknown" and "which slot they ran is unknown" in r["summary"]
    json.dumps(jobs.check(ops_of(span(0, 20) + run(0, 0, 1, 2))))


def test_check_all_runs_jobs_alongside_the_lock_checkers() -> None:
    lock = [(0, 0, "invoke", "acquire", None), (1, 0, "ok", "acquire", None)]
    lock += [(4, 0, "invoke", "release", None), (5, 0, "ok", "release", None)]
    raw = lock + run(0, 0, 2, 3) + run(1, 0, 6, 7)
    r = checkers.check_all(ops_of(raw))
    assert list(r["checkers"]) == ["mutex", "fencing", "perf", "jobs"]
    assert r["valid"] is False and "jobs:" in r["summary"]


# -- property tests against a brute-force model ----------------------------------------------------


@st.composite
def jobs_history(draw: st.DrawFn) -> tuple[list[Op], list[tuple[int, int, int]]]:
    """Executions of random slots at random whole-ms times; returns the ops and, for the model,
    each execution as (slot, start ms, end ms) with unfinished ones ending at the last op."""
    first = draw(st.integers(0, 15))
    last = draw(st.integers(first, 120))
    raw = span(first, last)
    execs = []
    for p in range(draw(st.integers(0, 12))):
        slot = draw(st.integers(0, 12))
        start = draw(st.integers(first, last))
        end = draw(st.one_of(st.none(), st.integers(start, last)))
        outcome = draw(st.sampled_from(["ok", "info", "fail"]))
        raw += run(p, slot, start, end, outcome)
        execs.append((slot, start, last if end is None else end))
    return ops_of(raw), execs


def brute(execs: list[tuple[int, int, int]], first: int, last: int) -> dict[str, Any]:
    if not execs:
        return {"valid": None}
    slots = [s for s, _, _ in execs]
    doubles = {s for s in slots if slots.count(s) > 1}
    due = [s for s in range(0, last // P + 1) if s * P >= first and (s + 1) * P <= last]
    if not any(s in due for s in slots):
        due = list(range(min(slots), max(slots) + 1))
    # Overlap, one ms at a time: ms of each execution already covered by one that started
    # before it (ties in start broken by the order the checker sweeps: the order recorded).
    order = sorted(range(len(execs)), key=lambda i: execs[i][1])
    overlapping = overlap = 0
    for n, i in enumerate(order):
        earlier = [execs[j] for j in order[:n]]
        _, s, e = execs[i]
        covered = [t for t in range(s, e) if any(a <= t < b for _, a, b in earlier)]
        overlap += len(covered)
        overlapping += any(a <= s < b for _, a, b in earlier)
    return {
        "valid": not doubles,
        "double_executions": len(doubles),
        "missed_slots": len([s for s in due if s not in slots]),
        "overlapping_executions": overlapping,
        "overlap_ms": float(overlap),
    }


@settings(max_examples=300, deadline=None)
@given(jobs_history())
def test_jobs_checker_agrees_with_brute_force(case: tuple[list[Op], list[tuple]]) -> None:
    ops, execs = case
    first, last = ops[0].time // MS, ops[-1].time // MS
    want = brute(execs, first, last)
    got = jobs.check(ops)
    event(f"valid={want['valid']}")
    for name, v in want.items():
        assert got[name] == v, name
