"""checkers.results: the verdict enum and its JSON form, a checker that crashes inside a map
(Jepsen's check-safe: UNKNOWN with its error, the others' results kept), schema_version in
results.json, the accessors readers use, and the checkers split into figures and words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import checkers
from checkers import fencing, jobs, mutex
from checkers import set as set_checker
from checkers.history import Op, ReadResult
from checkers.results import (
    SCHEMA_VERSION,
    Verdict,
    checker_results,
    count,
    jobs_result,
    mutex_result,
    set_result,
)
from harness.run.analyse import analyse, nothing_recorded

from .conftest import harness


def hist(*events: tuple[Any, ...], key: str = "k") -> list[Op]:
    """Events (process, type, f[, value]) on ``key``, 1 ms apart."""
    return [
        Op(i, i * 1_000_000, p, t, f, key, rest[0] if rest else None)
        for i, (p, t, f, *rest) in enumerate(events)
    ]


def session(p: int, fence: int) -> list[tuple[Any, ...]]:
    return [
        (p, "invoke", "acquire"),
        (p, "ok", "acquire", fence),
        (p, "invoke", "write", fence),
        (p, "ok", "write", fence),
        (p, "invoke", "release"),
        (p, "ok", "release"),
    ]


CLEAN = hist(*session(1, 1), *session(2, 2))
OVERLAP = hist(
    (1, "invoke", "acquire"),
    (1, "ok", "acquire", 1),
    (2, "invoke", "acquire"),
    (2, "ok", "acquire", 2),
    (1, "invoke", "release"),
    (1, "ok", "release"),
    (2, "invoke", "release"),
    (2, "ok", "release"),
)


def boom(h: checkers.History) -> checkers.Result:
    raise ValueError("no such slot: 'x'")


# --- Verdict -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "json_value", "word", "code"),
    [
        (Verdict.VALID, True, "valid", 0),
        (Verdict.INVALID, False, "invalid", 1),
        (Verdict.UNKNOWN, "unknown", "unknown", 2),
        (Verdict.NOT_APPLICABLE, None, "not applicable", 2),
    ],
)
def test_the_verdict_round_trips_json(
    verdict: Verdict, json_value: Any, word: str, code: int
) -> None:
    assert verdict.to_json() is json_value or verdict.to_json() == json_value
    back = json.loads(json.dumps({"valid": verdict.to_json()}))["valid"]
    assert Verdict.from_json(back) is verdict
    assert verdict.word == word == checkers.verdict_word(json_value)
    assert verdict.exit_code == code == checkers.exit_code(json_value)


@pytest.mark.parametrize("junk", [1, 0, "true", "valid", "", [], {}, 1.0])
def test_a_value_no_checker_writes_is_unknown_never_valid(junk: Any) -> None:
    """``1 == True`` in Python: a hand-edited ``"valid": 1`` must not read as VALID."""
    assert Verdict.from_json(junk) is Verdict.UNKNOWN
    assert checkers.verdict_word(junk) == "unknown" and checkers.exit_code(junk) == 2
    assert checkers.combine([True, junk]) == "unknown"


def test_combine_through_the_enum_keeps_its_order() -> None:
    assert checkers.combine([True, None, "unknown"]) == "unknown"
    assert checkers.combine(["unknown", False, True]) is False
    assert checkers.combine([None, True]) is True
    assert checkers.combine([None]) is None and checkers.combine([]) is None
    V = Verdict
    assert V.combine([V.VALID, V.NOT_APPLICABLE]) is V.VALID
    assert V.combine([V.UNKNOWN, V.INVALID]) is V.INVALID


# --- check-safe --------------------------------------------------------------------------------


def test_a_crashing_checker_gives_unknown_with_its_error_and_keeps_the_others() -> None:
    lock = checkers.lock_checkers()
    r = checkers.compose({"mutex": lock["mutex"], "boom": boom, "perf": lock["perf"]})(CLEAN)
    assert r["valid"] == "unknown"  # the rest is valid: never VALID with a checker missing
    assert r["checkers"]["mutex"] == mutex.check(CLEAN)  # kept, as if alone
    assert r["checkers"]["perf"]["valid"] is True
    crash = r["checkers"]["boom"]
    assert crash["valid"] == "unknown"
    assert crash["summary"] == "checker crashed: ValueError: no such slot: 'x'"
    err = crash["error"]  # type: ignore[typeddict-item]
    assert err["type"] == "ValueError" and err["message"] == "no such slot: 'x'"
    assert "Traceback" in err["traceback"] and "in boom" in err["traceback"]
    assert r["unknown_because"] == ["the boom checker crashed: ValueError: no such slot: 'x'"]
    assert r["summary"].startswith("unknown (the boom checker crashed: ValueError")
    assert "boom: checker crashed" in r["summary"]
    assert checkers.exit_code(r["valid"]) == 2
    json.dumps(r)  # results.json can hold it


def test_a_crash_leaves_a_violation_found_by_another_checker_invalid() -> None:
    r = checkers.compose({"boom": boom, **checkers.lock_checkers()})(OVERLAP)
    assert r["valid"] is False
    assert r["checkers"]["mutex"]["valid"] is False
    assert r["checkers"]["boom"]["valid"] == "unknown"
    assert r["unknown_because"] == ["the boom checker crashed: ValueError: no such slot: 'x'"]
    assert r["summary"].startswith("invalid; ")


def test_without_a_crash_the_composed_result_has_no_unknown_because() -> None:
    r = checkers.compose(checkers.lock_checkers())(CLEAN)
    assert r["valid"] is True and "unknown_because" not in r
    assert list(r) == ["valid", "summary", "model", "checkers"]


def test_a_long_message_is_cut_in_the_summary_and_kept_whole_in_the_error() -> None:
    def long(h: checkers.History) -> checkers.Result:
        raise RuntimeError("x" * 1000)

    r = checkers.compose({"long": long})(CLEAN)["checkers"]["long"]
    assert len(r["summary"]) < 250 and r["summary"].endswith("...")
    assert r["error"]["message"] == "x" * 1000  # type: ignore[typeddict-item]


def test_a_crash_through_the_analyse_stage_keeps_schema_version_and_its_reason() -> None:
    got = ReadResult(ops=CLEAN, lines=len(CLEAN))
    r = analyse({**checkers.lock_checkers(), "boom": boom}, got)
    assert r["schema_version"] == SCHEMA_VERSION
    assert r["valid"] == "unknown" and r["checkers"]["mutex"]["valid"] is True
    assert any("boom checker crashed" in why for why in r["unknown_because"])


# --- schema_version ----------------------------------------------------------------------------


def _run_dir(d: Path, ops: list[Op]) -> Path:
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps({"backend": "redis", "workload": "mutex", "nemesis": [], "duration_s": 1.0})
    )
    (d / "history.jsonl").write_text("".join(json.dumps(op.to_dict()) + "\n" for op in ops))
    return d


def test_harness_check_writes_schema_version_in_results_json(tmp_path: Path) -> None:
    d = _run_dir(tmp_path / "run", CLEAN)
    got = harness("check", str(d))
    assert got.returncode == 0, got.stdout + got.stderr
    results = json.loads((d / "results.json").read_text())
    assert results["schema_version"] == SCHEMA_VERSION == 1
    assert results["valid"] is True


def test_a_run_that_recorded_nothing_has_schema_version_too() -> None:
    assert nothing_recorded(interrupted=True)["schema_version"] == SCHEMA_VERSION


# --- accessors ---------------------------------------------------------------------------------


def test_accessors_give_a_checkers_result_or_none() -> None:
    r = checkers.check_all(CLEAN)
    m = mutex_result(r)
    assert m is not None and m["hold_count"] == 2
    assert set_result(r) is None and jobs_result(r) is None
    for junk in ({}, {"checkers": []}, {"checkers": {"mutex": "x"}}, {"checkers": None}):
        assert mutex_result(junk) is None
    both = {"checkers": {"mutex": {"valid": True}, "odd": "not a result", "set": None}}
    assert checker_results(both) == {"mutex": {"valid": True}}
    assert checker_results({"checkers": ["mutex"]}) == {}
    assert count({"n": 3}, "n") == 3 and count({"n": 2.0}, "n") == 2
    assert count({"n": True}, "n") is None and count({"n": "3"}, "n") is None
    assert count(None, "n") is None and count({}, "n") is None


# --- the split checkers ------------------------------------------------------------------------


def test_fencing_figures_do_not_depend_on_enforcement() -> None:
    """A stale write accepted: enforcement changes the verdict and its words, nothing else."""
    ops = hist(
        (1, "invoke", "acquire"),
        (1, "ok", "acquire", 1),
        (2, "invoke", "acquire"),
        (2, "ok", "acquire", 2),
        (1, "invoke", "write", 1),
        (1, "ok", "write", 1),
        (1, "invoke", "release"),
        (2, "invoke", "release"),
    )
    loose, strict = fencing.check(ops), fencing.check(ops, enforced=True)
    assert loose["valid"] is True and strict["valid"] is False
    assert loose["stale_accepted"] == strict["stale_accepted"] == 1
    same = {k for k in loose if loose[k] == strict[k]}  # type: ignore[literal-required]
    assert set(loose) - same == {"valid", "summary", "enforced"}
    assert fencing.figures(ops) == fencing.figures(ops)  # pure: the ops are only read


def test_set_figures_are_what_the_result_reports() -> None:
    ops = hist(
        (1, "invoke", "add", 1),
        (1, "ok", "add", 1),
        (2, "invoke", "add", 2),
        (2, "ok", "add", 2),
        (3, "invoke", "read"),
        (3, "ok", "read", [2, 2]),
    )
    fig = set_checker.figures(ops)
    r = set_checker.check(ops)
    assert (fig.acked, fig.n["lost"], fig.n["duplicated"]) == (2, 1, 1)
    assert (r["acknowledged_count"], r["lost_count"], r["duplicated_count"]) == (2, 1, 1)
    assert set_checker.verdict(fig, set_checker.doubts_of(fig)) is False is r["valid"]
    assert r["summary"] == set_checker.describe(fig, False, [])


def test_jobs_figures_are_what_the_result_reports() -> None:
    def ex(p: int, t: str, slot: int) -> tuple[Any, ...]:
        return (p, t, "exec", {"slot": slot, "period": 1})

    ops = hist(ex(1, "invoke", 0), ex(1, "ok", 0), ex(2, "invoke", 0), ex(2, "ok", 0))
    fig = jobs.figures(ops)
    r = jobs.check(ops)
    assert fig.doubles == [0] and fig.extra == 1 and fig.blame is None  # no lock ops
    assert r["double_executions"] == 1 and r["extra_executions"] == 1 and r["valid"] is False
    assert r["summary"] == jobs.describe(fig, False, "")
