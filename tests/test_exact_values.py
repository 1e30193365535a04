"""Values compare as JSON values, unreadable lines are not read, and a run directory agrees with
itself or it is UNKNOWN (issue 16, points 4 and 5).

Each case is a small hand-written history, checked through ``harness check`` (the command line,
as a user would) and, where a checker decides it, through the checker functions on ops read by
``checkers.history``. Python has ``1 == 1.0 == True``; JSON does not: ``1``, ``1.0``, ``"1"`` and
``true`` are four locks, four elements.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from checkers import fencing, jobs, mutex
from checkers import set as set_checker
from checkers.history import Exact, Op, parse_lines

from .conftest import harness

BIG = 2**64  # orjson reads integers from here on as floats


def _op(i: int, p: int, ty: str, f: str, key: Any = "a", **kw: Any) -> dict[str, Any]:
    d = {"index": i, "time": 10 * (i + 1), "process": p, "type": ty, "f": f, **kw}
    if key is not ...:
        d["key"] = key
    return d


def _hold(i: int, p: int, key: Any, fence: Any = None) -> list[dict[str, Any]]:
    """An acquire (invoke, ok) at index i, i+1."""
    return [_op(i, p, "invoke", "acquire", key), _op(i + 1, p, "ok", "acquire", key, value=fence)]


def _release(i: int, p: int, key: Any) -> list[dict[str, Any]]:
    return [_op(i, p, "invoke", "release", key), _op(i + 1, p, "ok", "release", key)]


def _at_once(k1: Any, k2: Any, n: int = 0) -> list[dict[str, Any]]:
    """Process 2n holds k1 while process 2n + 1 takes k2: an overlap if and only if k1 is k2
    (ops from index 8n on)."""
    i, p = 8 * n, 2 * n
    return (
        _hold(i, p, k1)
        + _hold(i + 2, p + 1, k2)
        + _release(i + 4, p + 1, k2)
        + _release(i + 6, p, k1)
    )


def _lines(ops: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(o).encode() + b"\n" for o in ops]


def _read(ops: list[dict[str, Any]]) -> list[Op]:
    got = parse_lines(_lines(ops))
    assert not got.problems, got.problems
    return got.ops


def _write(path: Path, ops: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(_lines(ops)))
    return path


def _check(path: Path, code: int) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    """``harness check`` on a file or run directory: its exit code, and its JSON results."""
    r = harness("check", str(path), env={"COLUMNS": "400"})
    assert "Traceback" not in r.stdout + r.stderr and "internal error" not in r.stderr
    assert r.returncode == code, r.stdout + r.stderr
    j = harness("check", "--json", str(path))
    assert j.returncode == code, j.stderr
    return r, json.loads(j.stdout)


# -- point 4: exact values ------------------------------------------------------------------------


def test_one_two_one_point_oh_and_true_are_four_locks(tmp_path):
    keys = [1, 1.0, "1", True]
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]]
    for a, b in pairs:  # Python merged 1, 1.0 and true into one lock: a false overlap
        res = mutex.check(_read(_at_once(a, b)))
        assert res["valid"] is True and res["keys"] == 2, (a, b, res["summary"])
        assert mutex.check(_read(_at_once(a, a)))["valid"] is False, a
    r, res = _check(_write(tmp_path / "h.jsonl", _at_once(1, 1.0) + _at_once(True, "1", 1)), 0)
    assert res["checkers"]["mutex"]["keys"] == 4
    held = [h["key"] for h in res["checkers"]["mutex"]["holds"]]
    assert sorted(map(json.dumps, held)) == ['"1"', "1", "1.0", "true"]  # written back as read


def test_list_and_object_keys_are_compared_exactly_without_a_crash(tmp_path):
    # [1] and [true] are two locks; {"a": 1, "b": 2} is one lock however its members are ordered
    _check(_write(tmp_path / "lists.jsonl", _at_once([1], [True])), 0)
    r, res = _check(
        _write(tmp_path / "objs.jsonl", _at_once({"a": 1, "b": 2}, {"b": 2, "a": 1})), 1
    )
    v = res["checkers"]["mutex"]["violations"][0]
    assert v["kind"] == "overlap" and v["key"] == {"a": 1, "b": 2}
    assert mutex.check(_read(_at_once([1, [2]], [1, [2.0]])))["valid"] is True


def test_integers_past_64_bits_stay_exact(tmp_path):
    # 2^64 and 2^64 + 1 became one float: two locks read as one (a false overlap) ...
    res = mutex.check(_read(_at_once(BIG, BIG + 1)))
    assert res["valid"] is True and res["keys"] == 2
    r, res = _check(_write(tmp_path / "keys.jsonl", _at_once(BIG, BIG + 1)), 0)
    assert {h["key"] for h in res["checkers"]["mutex"]["holds"]} == {BIG, BIG + 1}
    # ... and fence tokens going backwards read as floats, "no fence tokens"
    back = (
        _hold(0, 0, "a", BIG + 1)
        + _release(2, 0, "a")
        + _hold(4, 1, "a", BIG)
        + _release(6, 1, "a")
    )
    res = fencing.check(_read(back))
    assert res["valid"] is False and res["non_increasing"] == 1 and res["fenced_holds"] == 2
    r, res = _check(_write(tmp_path / "fences.jsonl", back), 1)
    assert "fence tokens did not increase 1 times" in r.stdout
    assert res["checkers"]["mutex"]["holds"][1]["fence"] == BIG
    # a fence is an integer, however large: 2.0 and true are no tokens
    odd = _hold(0, 0, "a", 2.0) + _release(2, 0, "a") + _hold(4, 1, "a", True) + _release(6, 1, "a")
    assert fencing.check(_read(odd))["fenced_holds"] == 0
    # far past 64 bits (orjson refuses the line outright): still read, and exact
    huge = 10**40
    ops = _read(_at_once(huge, huge + 1))
    assert {o.key for o in ops} == {huge, huge + 1}


def test_set_elements_one_and_true_are_two_elements(tmp_path):
    # adds of 1 and true, a final read of [1]: true was lost (Python found it in [1])
    ops = [
        _op(0, 0, "invoke", "add", "s", value=1),
        _op(1, 0, "ok", "add", "s", value=1),
        _op(2, 1, "invoke", "add", "s", value=True),
        _op(3, 1, "ok", "add", "s", value=True),
        _op(4, 2, "invoke", "add", "s", value=[1]),
        _op(5, 2, "ok", "add", "s", value=[1]),
        _op(6, 3, "invoke", "read", "s"),
        _op(7, 3, "ok", "read", "s", value=[1, "[1]"]),  # "[1]" is not [1]: its repr is
    ]
    res = set_checker.check(_read(ops))
    assert res["valid"] is False and res["lost_count"] == 2 and res["unexpected_count"] == 1
    assert {json.dumps(x["element"], default=lambda e: e.value) for x in res["lost"]} == {
        "true",
        "[1]",
    }
    r, res = _check(_write(tmp_path / "h.jsonl", ops), 1)
    s = res["checkers"]["set"]
    assert sorted(map(json.dumps, (x["element"] for x in s["lost"]))) == ["[1]", "true"]
    assert [x["element"] for x in s["unexpected"]] == ["[1]"]


def test_exact_stands_for_its_json_value():
    assert Exact(True) != Exact(1) and Exact(1.0) != Exact(True) and Exact([1]) != Exact([True])
    assert Exact({"a": [1.0]}) == Exact({"a": [1.0]}) and Exact(True) == True  # noqa: E712
    assert len({Exact(True), Exact(1.0), 1, "1", Exact([1]), Exact({"1": 1})}) == 6
    assert str(Exact([True, 1.5])) == "[true, 1.5]"


# -- point 4: unreadable lines are not read -------------------------------------------------------


VALID = _hold(0, 0, "a") + _release(2, 0, "a") + _hold(4, 1, "a") + _release(6, 1, "a")


def test_type_f_or_process_missing_null_or_of_the_wrong_type_is_unreadable(tmp_path):
    bad = [
        {"index": 8, "time": 90, "process": 2, "type": "invoke", "f": None, "key": "a"},
        {"index": 9, "time": 91, "process": 2, "type": ["ok"], "f": "acquire", "key": "a"},
        {"index": 10, "time": 92, "process": 2, "type": "ok", "f": 3, "key": "a"},
        {"index": 11, "time": 93, "process": True, "type": "ok", "f": "acquire", "key": "a"},
        {"index": 12, "time": 94, "process": 1.0, "type": "ok", "f": "acquire", "key": "a"},
        {"index": 13, "time": 95, "process": 2, "type": None, "f": "acquire", "key": "a"},
    ]
    got = parse_lines(_lines(VALID + bad))
    assert len(got.ops) == 8 and got.bad_lines == [9, 10, 11, 12, 13, 14]
    assert "null field(s) f" in got.problems[0] and "not a string" in got.problems[2]
    r, res = _check(_write(tmp_path / "h.jsonl", VALID + bad), 2)
    assert "UNKNOWN" in r.stdout and "6 of 14 lines could not be read" in r.stdout
    assert res["valid"] == "unknown" and res["problem_count"] == 6


def test_a_key_given_only_on_completions_is_the_ops_key(tmp_path):
    # process 1's acquire names its lock only on its ok: the overlap with process 0 is real
    ops = _at_once("a", "a")
    del ops[2]["key"]
    assert mutex.check(_read(ops))["valid"] is False
    direct = [Op(**o) for o in ops]  # the checkers take it so without the reader too
    assert mutex.check(direct)["valid"] is False
    _check(_write(tmp_path / "acq.jsonl", ops), 1)
    # releases whose invocations carry no key: no release by a non-owner, no revoked hold
    ops = [dict(o) for o in VALID]
    for o in ops:
        if o["f"] == "release" and o["type"] == "invoke":
            del o["key"]
    assert mutex.check(_read(ops))["valid"] is True
    assert mutex.check([Op(**o) for o in ops])["valid"] is True
    _check(_write(tmp_path / "rel.jsonl", ops), 0)


def test_a_completion_whose_key_disagrees_with_its_invocation_is_unreadable(tmp_path):
    ops = [dict(o) for o in VALID]
    ops[1]["key"] = "b"  # acquire invoked on a, granted on b: which lock it took is unknown
    got = parse_lines(_lines(ops))
    assert got.bad_lines == [2] and "disagrees with its invocation's key" in got.problems[0]
    r, res = _check(_write(tmp_path / "h.jsonl", ops), 2)
    assert "1 of 8 lines could not be read (line 2)" in r.stdout


def test_exec_slots_three_point_oh_and_string_three_are_not_dropped(tmp_path):
    # three executions of one job slot, two of them with a slot that is not the integer 3
    ops = []
    for i, slot in enumerate((3, 3.0, "3")):
        value = {"slot": slot, "period": 1000}
        ops += [
            _op(2 * i, i, "invoke", "exec", "job", value=value),
            _op(2 * i + 1, i, "ok", "exec", "job", value=value),
        ]
    res = jobs.check(_read(ops))
    assert res["valid"] == "unknown" and "2 execution(s) without an integer" in res["summary"]
    r, res = _check(_write(tmp_path / "h.jsonl", ops), 2)
    assert res["checkers"]["jobs"]["valid"] == "unknown"


# -- point 5: a run directory agrees with itself --------------------------------------------------

CONFIG = {"backend": "redis", "workload": "mutex", "nemesis": [], "duration_s": 1.0, "seed": 1}


def _run_dir(path: Path, ops: list[dict[str, Any]], config: dict[str, Any] | None) -> Path:
    path.mkdir()
    _write(path / "history.jsonl", ops)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    return path


def test_a_run_dir_whose_config_is_empty_or_has_no_duration_is_unknown(tmp_path):
    r, _ = _check(_run_dir(tmp_path / "empty", VALID, {}), 2)
    assert "config.json is empty" in r.stdout
    r, _ = _check(_run_dir(tmp_path / "null", VALID, CONFIG | {"duration_s": None}), 2)
    assert "duration_s is null" in r.stdout
    r, _ = _check(
        _run_dir(tmp_path / "gone", VALID, {k: v for k, v in CONFIG.items() if k != "duration_s"}),
        2,
    )
    assert "never finished" in r.stdout
    _check(_run_dir(tmp_path / "ok", VALID, CONFIG), 0)
    _check(_run_dir(tmp_path / "bare", VALID, None), 0)  # a history alone: a bare history


def test_ops_no_checker_of_the_workload_reads_make_it_unknown(tmp_path):
    # config.json says mutex; the history is a lock-set history with a lost update
    lockset = VALID + [
        _op(8, 0, "invoke", "add", "a", value=7),
        _op(9, 0, "ok", "add", "a", value=7),
        _op(10, 5, "invoke", "read", "a"),
        _op(11, 5, "ok", "read", "a", value=[]),
    ]
    r, res = _check(_run_dir(tmp_path / "mutex", lockset, CONFIG), 2)
    assert "no checker of the mutex workload reads (2 add and 2 read ops; set would" in r.stdout
    _check(_run_dir(tmp_path / "lockset", lockset, CONFIG | {"workload": "lock-set"}), 1)


def test_a_workload_whose_checkers_find_none_of_their_ops_is_unknown(tmp_path):
    r, res = _check(_run_dir(tmp_path / "jobs", VALID, CONFIG | {"workload": "jobs"}), 2)
    assert "jobs checker found none of its ops (exec)" in r.stdout


def test_compare_refuses_a_results_json_its_history_contradicts(tmp_path):
    d = _run_dir(tmp_path / "run", _at_once("a", "a"), CONFIG)
    _check(d, 1)  # writes results.json: INVALID
    p = harness("compare", str(d), "--out", str(tmp_path / "one.html"))
    assert p.returncode == 1, p.stdout + p.stderr
    results = json.loads((d / "results.json").read_text())
    results |= {"valid": True, "summary": "valid"}
    results["checkers"]["mutex"] |= {"valid": True, "violation_kinds": {}, "violation_count": 0}
    (d / "results.json").write_text(json.dumps(results))
    p = harness("compare", str(d), "--out", str(tmp_path / "two.html"))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "results.json says VALID, its history INVALID: refused" in p.stderr
    assert "refused" in (tmp_path / "two.html").read_text()
