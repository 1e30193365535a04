"""checkers.mutex on hand-written histories and on a real Jepsen etcd history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checkers import mutex, wgl
from checkers.history import Op, read

ETCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "jepsen-etcd-3.4.3-mutex.jsonl"


def hist(*events: tuple[Any, ...], key: Any = "k") -> list[Op]:
    """Events (process, type, f[, value[, error]]) in time order, one ns apart."""
    ops = []
    for i, ev in enumerate(events):
        p, t, f, *rest = ev
        value = rest[0] if rest else None
        error = rest[1] if len(rest) > 1 else None
        ops.append(Op(i, i * 10, p, t, f, key, value, error))
    return ops


def both(ops: list[Op]) -> dict[str, Any]:
    """Run the mutex checker and check the WGL oracle agrees with it."""
    r = mutex.check(ops)
    assert wgl.check(ops)["valid"] == r["valid"], r["summary"]
    json.dumps(r)  # must be serialisable
    return r


def test_sequential_holds_valid() -> None:
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "ok", "acquire", 1),
            (2, "invoke", "acquire"),
            (1, "invoke", "release", 1),
            (2, "ok", "acquire", 2),  # returns after 1 invoked release: fine
            (1, "ok", "release", 1),
            (2, "invoke", "release", 2),
            (2, "ok", "release", 2),
        )
    )
    assert r["valid"] is True
    assert r["hold_count"] == 2 and r["violation_count"] == 0
    assert [h["fence"] for h in r["holds"]] == [1, 2]
    assert r["holds"][0]["end"] == 30 and r["holds"][0]["release"] == "ok"


def test_overlap() -> None:
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "ok", "acquire"),
            (2, "invoke", "acquire"),
            (2, "ok", "acquire"),
            (1, "invoke", "release"),
            (1, "ok", "release"),
        )
    )
    assert r["valid"] is False
    (v,) = r["violations"]
    assert v["kind"] == "overlap" and v["first"]["process"] == 1 and v["second"]["process"] == 2
    assert [o["index"] for o in v["ops"]] == [0, 1, 2, 3, 4, 5]
    assert r["summary"] == "1 violation on 1 key: 1 overlap"


def test_revoked_while_held() -> None:
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "ok", "acquire"),
            (1, "invoke", "release"),
            (1, "fail", "release", None, "not owner"),
            (2, "invoke", "acquire"),
            (2, "ok", "acquire"),
            (2, "invoke", "release"),
            (2, "ok", "release"),
        )
    )
    (v,) = r["violations"]
    assert v["kind"] == "revoked-while-held"
    assert v["first"]["release"] == "fail" and v["first"]["end"] is None
    # Taken only after the holder had let go: not two clients acting at once.
    assert v["while_acting"] is False and r["revoked_while_acting"] == 0


def test_lock_given_again_to_its_own_holder_is_one_owner() -> None:
    """A holder's release fails (the server was down), its lease runs out, and the same client
    acquires the lock again: nobody else ever held it, so it is no violation. Its first hold
    lasts until the new one ends: another client taking the lock in the gap, or during the
    new hold, is caught; after the new hold's release it is fine."""
    regrant = [
        (1, "invoke", "acquire"),
        (1, "ok", "acquire", 1),
        (1, "invoke", "release", 1),
        (1, "fail", "release", 1, "cannot connect"),
        (1, "invoke", "acquire"),
        (1, "ok", "acquire", 2),
        (1, "invoke", "release", 2),
        (1, "ok", "release", 2),
    ]
    r = both(hist(*regrant, (2, "invoke", "acquire"), (2, "ok", "acquire", 3)))
    assert r["valid"] is True and r["hold_count"] == 3
    assert r["holds"][0]["end"] == r["holds"][1]["end"] == 60  # the new hold's release
    taken = [(2, "invoke", "acquire"), (2, "ok", "acquire", 3)]
    gap = regrant[:4] + taken + [(2, "invoke", "release", 3), (2, "ok", "release", 3)]
    gap += regrant[4:]
    (v,) = both(hist(*gap))["violations"]
    assert v["kind"] == "revoked-while-held" and (
        v["first"]["process"],
        v["second"]["process"],
    ) == (1, 2)
    during = regrant[:6] + taken + regrant[6:]
    r = both(hist(*during))
    assert r["valid"] is False and {v["second"]["process"] for v in r["violations"]} == {2}


def test_revoked_while_the_holder_still_acted() -> None:
    """A paused holder: the lease ran out and another acquired before the holder even invoked
    its release (it woke, wrote, then found the lock gone): both acted as holder at once."""
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "ok", "acquire"),
            (2, "invoke", "acquire"),
            (2, "ok", "acquire"),
            (1, "invoke", "release"),
            (1, "fail", "release", None, "not owner"),
            (2, "invoke", "release"),
            (2, "ok", "release"),
        )
    )
    (v,) = r["violations"]
    assert v["kind"] == "revoked-while-held" and v["while_acting"] is True
    assert r["revoked_while_acting"] == 1


def test_release_by_non_owner_and_failed_release_is_harmless() -> None:
    r = both(
        hist(
            (1, "invoke", "release"),
            (1, "fail", "release", None, "not owner"),
            (1, "invoke", "release"),
            (1, "ok", "release"),
        )
    )
    (v,) = r["violations"]
    assert v["kind"] == "release-by-non-owner" and v["first"] is None and v["second"] is None
    assert [o["index"] for o in v["ops"]] == [2, 3]


def test_info_ops() -> None:
    # An info acquire is dropped; an info release may have happened, so the next holder is fine.
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "info", "acquire"),
            (2, "invoke", "acquire"),
            (2, "ok", "acquire"),
            (2, "invoke", "release"),
            (2, "info", "release"),
            (3, "invoke", "acquire"),
            (3, "ok", "acquire"),
            (4, "invoke", "acquire"),  # never completes
        )
    )
    assert r["valid"] is True and r["hold_count"] == 2
    assert r["holds"][0]["release"] == "info" and r["holds"][1]["end"] is None


def test_never_released_then_taken() -> None:
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "ok", "acquire"),
            (2, "invoke", "acquire"),
            (2, "ok", "acquire"),
        )
    )
    assert r["violations"][0]["kind"] == "revoked-while-held"
    assert r["violations"][0]["first"]["release"] is None


def test_keys_are_independent_and_nemesis_ignored() -> None:
    a = hist((1, "invoke", "acquire"), (1, "ok", "acquire"), key="a")
    b = [Op(o.index + 2, o.time + 5, 2, o.type, o.f, 7) for o in a]
    nem = [Op(10, 1, "nemesis", "info", "start-partition"), Op(11, 2, "nemesis", "ok", "kill")]
    r = both(a + b + nem)
    assert r["valid"] is True and r["keys"] == 2


def test_sorted_by_time_not_index() -> None:
    # The same overlap with indexes scrambled: the verdict follows time.
    ops = hist(
        (1, "invoke", "acquire"),
        (1, "ok", "acquire"),
        (1, "invoke", "release"),
        (2, "invoke", "acquire"),
        (2, "ok", "acquire"),
        (1, "ok", "release"),
    )
    for o, i in zip(ops, [5, 3, 0, 1, 4, 2], strict=True):
        o.index = i
    assert both(list(reversed(ops)))["valid"] is True
    ops[4].time = ops[2].time  # 2's acquire returns at the same ns as 1 invokes release...
    ops[4].index = 0  # ...but was recorded first: it precedes, so the holds overlap
    ops[2].index = 9
    r = both(ops)
    assert r["valid"] is False and r["violations"][0]["kind"] == "overlap"


def test_non_retired_process_conservative() -> None:
    # Foreign tools may reuse a process after info: its info acquire may have happened.
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "info", "acquire"),
            (1, "invoke", "release"),
            (1, "ok", "release"),
        )
    )
    assert r["valid"] is True and r["notes"]
    # An info release followed by an ok release: the info one did not happen.
    r = both(
        hist(
            (1, "invoke", "acquire"),
            (1, "ok", "acquire"),
            (1, "invoke", "release"),
            (1, "info", "release"),
            (2, "invoke", "acquire"),
            (2, "ok", "acquire"),
            (1, "invoke", "release"),
            (1, "ok", "release"),
        )
    )
    assert r["valid"] is False and r["violations"][0]["kind"] == "overlap"


def test_caps() -> None:
    ops: list[Op] = []
    for i in range(30):  # 30 holds, never released, all broken into: 29 violations
        ops += [
            Op(2 * i, 2 * i, i, "invoke", "acquire", "k"),
            Op(2 * i + 1, 2 * i + 1, i, "ok", "acquire", "k"),
        ]
    r = mutex.check(ops, max_holds=10)
    assert r["hold_count"] == 30 and len(r["holds"]) == 10 and r["holds_truncated"] is True
    assert r["violation_count"] == 29


def test_etcd_jepsen_history() -> None:
    if not ETCD.exists():
        pytest.skip(f"shared data absent: {ETCD}")
    ops = read(ETCD).ops
    r = mutex.check(ops)
    assert r["valid"] is False
    assert r["violation_count"] == 2
    assert [v["kind"] for v in r["violations"]] == ["revoked-while-held"] * 2
    assert all(v["first"]["release"] == "fail" for v in r["violations"])
    # In both, the next holder acquired after the old one had invoked its release.
    assert r["revoked_while_acting"] == 0
    assert wgl.check(ops)["valid"] is False
    # Cut just before the first revoked hold was broken into: both call it valid.
    first = r["violations"][0]["second"]["acquire_index"]
    prefix = [o for o in ops if o.index < first]
    assert mutex.check(prefix)["valid"] is True
    assert wgl.check(prefix)["valid"] is True
