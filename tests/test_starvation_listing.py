"""The starvation rule judges only what the checkers listed: when they listed fewer violations
than they found, one left out may be clear of every stall, so the run stays INVALID, unless
all of them are listed again (``checkers.relisted``: mutex violations, fencing findings)."""

from __future__ import annotations

from typing import Any

import pytest

from checkers import compose, lock_checkers, relisted
from checkers.columns import OpsView, read_columns
from checkers.history import Op
from checkers.starvation import assess

from .test_starvation import LEASE, _invalid, _record, _window


def test_violations_not_listed_keep_the_run_invalid() -> None:
    results = _invalid((0, 1, 1000, 2200))
    results["checkers"]["mutex"]["violation_count"] = 2  # one more, on another key, not listed
    assess(results, _record([_window(0, 1100, 3100)]), [], LEASE)
    assert results["valid"] is False and "unknown_because" not in results, results
    assert results["checkers"]["mutex"]["valid"] is False
    assert results["stalls"]["unlisted_violations"] == 1
    # every violation listed and inside the stall: the same run is the harness's
    listed = _invalid((0, 1, 1000, 2200))
    assess(listed, _record([_window(0, 1100, 3100)]), [], LEASE)
    assert listed["valid"] == "unknown", listed


MS = 1_000_000


def _stalled_holder_history(keys: int, extra: bool) -> list[Op]:
    """Client 0 takes ``keys`` keys, is stopped from 0.1 s to 3 s (its leases of 1 s run out),
    client 1 takes each of them at 2 s on, client 0 wakes and its releases are refused: one
    revoked hold a key, more than a result lists. ``extra``: one more, at 5 s, while client 0
    acts and nothing stalls."""
    ops: list[tuple[int, int, str, str, str, str | None]] = []
    for i in range(keys):
        k = f"k{i}"
        ops += [
            (i * 10, 0, "invoke", "acquire", k, None),
            (i * 10 + 5, 0, "ok", "acquire", k, None),
        ]
        t = 2000 * 1000 + i * 10  # in µs
        ops += [(t, 1, "invoke", "acquire", k, None), (t + 5, 1, "ok", "acquire", k, None)]
        ops += [(t + 7, 1, "invoke", "release", k, None), (t + 9, 1, "ok", "release", k, None)]
        w = 3_000_000 + i * 10
        ops += [(w, 0, "invoke", "release", k, None), (w + 5, 0, "fail", "release", k, "NotOwner")]
    if extra:
        ops += [
            (5_000_000, 0, "invoke", "acquire", "x", None),
            (5_000_005, 0, "ok", "acquire", "x", None),
        ]
        ops += [
            (5_000_100, 1, "invoke", "acquire", "x", None),
            (5_000_105, 1, "ok", "acquire", "x", None),
        ]
        ops += [
            (5_200_000, 0, "invoke", "release", "x", None),
            (5_200_005, 0, "fail", "release", "x", "NotOwner"),
        ]
    ops.sort(key=lambda o: o[0])
    return [
        Op(index=i, time=t * 1000, process=p, type=ty, f=f, key=k, error=e)
        for i, (t, p, ty, f, k, e) in enumerate(ops)
    ]  # fmt: skip


def _judged(ops: list[Op]) -> dict[str, Any]:
    return compose(lock_checkers())(ops, LEASE)


def test_every_violation_is_placed_in_time_when_more_were_found_than_listed() -> None:
    """150 revoked holds, all of a client stopped past its leases: the result lists 100; listed
    again, every one involves the stopped, silent client: UNKNOWN, the harness's. Without the
    second listing the run stays INVALID (one not listed might be clear of the stall)."""
    ops = _stalled_holder_history(150, extra=False)
    record = _record([_window(0, 100, 3000)])
    first = _judged(ops)["checkers"]["mutex"]
    again = relisted(ops, LEASE, first, 1000)["violations"]
    assert len(again) == 150 and len(_judged(ops)["checkers"]["mutex"]["violations"]) == 100
    unlisted = _judged(ops)
    assess(unlisted, record, ops, LEASE)
    assert unlisted["valid"] is False and unlisted["stalls"]["unlisted_violations"] == 50
    results = _judged(ops)
    assert results["checkers"]["mutex"]["violation_count"] == 150
    assess(results, record, ops, LEASE, relist=lambda r, n: relisted(ops, LEASE, r, n))
    assert results["valid"] == "unknown", results["stalls"]
    assert results["stalls"]["relisted"] == 150 and results["stalls"]["violations_in_stalls"] == 150
    # the same from the columns the history is read into
    cols = OpsView(_columns(ops))
    assert relisted(cols, LEASE, first, 1000)["violations"] == again


def test_a_violation_beyond_the_listed_ones_and_clear_of_every_stall_keeps_invalid() -> None:
    ops = _stalled_holder_history(150, extra=True)
    results = _judged(ops)
    assert results["checkers"]["mutex"]["violation_count"] == 151
    assess(results, _record([_window(0, 100, 3000)]), ops, LEASE,
           relist=lambda r, n: relisted(ops, LEASE, r, n))  # fmt: skip
    assert results["valid"] is False, results["stalls"]
    assert results["stalls"]["violations_in_stalls"] == 150


def _late_grants_history(keys: int, extra: bool) -> list[Op]:
    """Client 0 asks for ``keys`` keys at 0.1 s (a process a key: 0, 2, 4, ..., each of them
    client 0 of 2) and is stopped until 3 s: its grants (fence 1) are recorded after client 1's
    (fence 2, at 2 s): one token that did not increase a key, by the order the clients recorded,
    more than a fencing result lists; no two holds overlap. ``extra``: one more, at 5 s, where
    nothing stalls."""
    ops: list[tuple[int, int, str, str, str, int | None]] = []
    for i in range(keys + extra):
        k = f"k{i}"
        # asked, client 1's grant, client 0's grant recorded (µs); the extra one unstalled
        a, t, w = (
            (5_000_000, 5_050_000, 5_100_000) if i == keys else (100_000, 2_000_000, 3_000_000)
        )
        ops.append((a + i * 10, 2 * i, "invoke", "acquire", k, None))
        t += i * 10
        ops += [(t, 1, "invoke", "acquire", k, None), (t + 5, 1, "ok", "acquire", k, 2)]
        ops += [(t + 7, 1, "invoke", "release", k, None), (t + 9, 1, "ok", "release", k, None)]
        w += i * 10
        ops += [(w, 2 * i, "ok", "acquire", k, 1), (w + 5, 2 * i, "invoke", "release", k, None)]
        ops.append((w + 7, 2 * i, "ok", "release", k, None))
    ops.sort(key=lambda o: o[0])
    return [
        Op(index=i, time=t * 1000, process=p, type=ty, f=f, key=k, value=v)
        for i, (t, p, ty, f, k, v) in enumerate(ops)
    ]  # fmt: skip


def test_every_fencing_finding_is_placed_in_time_when_more_were_found_than_listed() -> None:
    """The same for fencing: 30 tokens that did not increase (a holder starved between its grant
    and its record), 20 listed; listed again, all involve the stopped, silent client: UNKNOWN.
    One more at 5 s, clear of the stall, keeps the run INVALID. The columns list the same."""
    ops = _late_grants_history(30, extra=False)
    record = _record([_window(0, 100, 3000)])
    results = _judged(ops)
    first = results["checkers"]["fencing"]
    assert results["valid"] is False and results["checkers"]["mutex"]["valid"] is True
    assert first["non_increasing"] == 30 and len(first["non_increasing_examples"]) == 20
    unlisted = _judged(ops)
    assess(unlisted, record, ops, LEASE)
    assert unlisted["valid"] is False and unlisted["stalls"]["unlisted_violations"] == 10
    assess(results, record, ops, LEASE, relist=lambda r, n: relisted(ops, LEASE, r, n))
    assert results["valid"] == "unknown", results["stalls"]
    assert results["stalls"]["relisted"] == 30 and results["stalls"]["violations_in_stalls"] == 30
    again = relisted(ops, LEASE, first, 30)["non_increasing_examples"]
    assert relisted(OpsView(_columns(ops)), LEASE, first, 30)["non_increasing_examples"] == again
    ops = _late_grants_history(30, extra=True)
    results = _judged(ops)
    assert results["checkers"]["fencing"]["non_increasing"] == 31
    assess(results, record, ops, LEASE, relist=lambda r, n: relisted(ops, LEASE, r, n))
    assert results["valid"] is False and results["stalls"]["violations_in_stalls"] == 30


def test_only_mutex_and_fencing_results_are_listed_again() -> None:
    with pytest.raises(ValueError, match="only mutex and fencing"):
        relisted([], LEASE, {"checker": "set"}, 10)


def _columns(ops: list[Op]) -> Any:
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        for op in ops:
            fh.write(json.dumps(op.to_dict()) + "\n")
    cols = read_columns(fh.name)
    assert cols is not None  # a plain lock history: read in columns
    return cols
