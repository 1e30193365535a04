"""checkers.fencing, checkers.perf and the combined check_all on hand-written histories."""

from __future__ import annotations

import json
from typing import Any

import pytest

import checkers
from checkers import fencing, perf, wgl
from checkers.history import Op


def hist(*events: tuple[Any, ...]) -> list[Op]:
    """Events (process, type, f[, value[, error]]) on key "k", 1 ms apart."""
    ops = []
    for i, (p, t, f, *rest) in enumerate(events):
        value = rest[0] if rest else None
        error = rest[1] if len(rest) > 1 else None
        ops.append(Op(i, i * 1_000_000, p, t, f, "k", value, error))
    return ops


def session(p: int, fence: int | None, write: str = "ok", err: str | None = None) -> list[tuple]:
    """Acquire, write with the fence, release: one whole critical section."""
    return [
        (p, "invoke", "acquire"),
        (p, "ok", "acquire", fence),
        (p, "invoke", "write", fence),
        (p, write, "write", fence, err),
        (p, "invoke", "release", fence),
        (p, "ok", "release", fence),
    ]


def test_increasing_fences_valid() -> None:
    r = fencing.check(hist(*session(1, 5), *session(2, 6), *session(1, 9)))
    assert r["valid"] is True and r["fenced_holds"] == 3 and r["writes"] == 3
    assert r["stale_accepted"] == 0 and r["summary"].startswith("fence tokens strictly")


def test_fence_going_backwards_invalid() -> None:
    r = fencing.check(hist(*session(1, 5), *session(2, 5)))
    assert r["valid"] is False and r["non_increasing"] == 1
    assert r["non_increasing_examples"][0]["hold"]["process"] == 2


def test_no_fences_not_applicable() -> None:
    r = fencing.check(hist(*session(1, None), *session(2, None)))
    assert r["valid"] is None
    assert r["summary"] == "no fence tokens: this lock offers no fencing"


def revoked(write: str, err: str | None = None) -> list[Op]:
    """Process 1's lease is taken by 2 (fence 8) before 1 writes with fence 7."""
    return hist(
        (1, "invoke", "acquire"),
        (1, "ok", "acquire", 7),
        (2, "invoke", "acquire"),
        (2, "ok", "acquire", 8),
        (2, "invoke", "write", 8),
        (2, "ok", "write", 8),
        (1, "invoke", "write", 7),
        (1, write, "write", 7, err),
        (1, "invoke", "release", 7),
        (1, "fail", "release", 7, "not owner"),
        (2, "invoke", "release", 8),
        (2, "ok", "release", 8),
    )


def test_stale_write_accepted() -> None:
    ops = revoked("ok")
    r = fencing.check(ops)
    assert r["valid"] is True  # tokens increased; the resource just did not enforce them
    assert r["stale_accepted"] == 1 and r["stale_rejected"] == 0
    assert r["summary"] == "1 stale write accepted: fencing would have rejected them"
    ex = r["stale_examples"][0]
    assert ex["process"] == 1 and ex["reason"] == "revoked" and ex["highest_fence_written"] == 8
    enforced = fencing.check(ops, enforced=True)
    assert enforced["valid"] is False and "although fencing was enforced" in enforced["summary"]


def test_stale_write_rejected() -> None:
    r = fencing.check(revoked("fail", "stale fence 7 < 8"), enforced=True)
    assert r["valid"] is True and r["stale_rejected"] == 1 and r["stale_accepted"] == 0


def test_lower_fence_write_without_revocation() -> None:
    # Process 1 writes fence 3 after fence 4 was written: stale by fence alone.
    ops = hist(
        (2, "invoke", "write", 4),
        (2, "ok", "write", 4),
        (1, "invoke", "acquire"),
        (1, "ok", "acquire", 5),
        (1, "invoke", "write", 3),
        (1, "ok", "write", 3),
    )
    r = fencing.check(ops)
    assert r["stale_accepted"] == 1 and r["stale_examples"][0]["reason"] == "lower-fence"


def test_perf_figures() -> None:
    ops = hist(
        (1, "invoke", "acquire"),  # t=0
        (2, "invoke", "acquire"),  # 1
        (1, "ok", "acquire", 1),  # 2: latency 2 ms
        (2, "fail", "acquire", None, "timeout"),  # 3: 2 ms
        (1, "invoke", "release"),  # 4
        (1, "ok", "release"),  # 5
        (3, "invoke", "acquire"),  # 6
        (3, "info", "acquire"),  # 7
        (4, "invoke", "acquire"),  # 8
        (4, "ok", "acquire", 2),  # 9: 1 ms
        (5, "invoke", "acquire"),  # 10, never completes
    )
    ops.insert(3, Op(99, 2_500_000, "nemesis", "info", "start-partition"))
    r = perf.check(ops)
    assert r["valid"] is True
    assert r["attempted_acquires"] == 5 and r["success_ratio"] == 0.4
    assert r["acquire_latency_ms"]["ok"] == {
        "p50": 1.0,
        "p95": 2.0,
        "p99": 2.0,
        "max": 2.0,
        "count": 2,
    }
    assert r["acquire_latency_ms"]["fail"]["max"] == 2.0
    assert r["counts"]["acquire"] == {"fail": 1, "info": 2, "invoke": 5, "ok": 2}
    assert r["span_s"] == 0.01 and r["acquires_per_s"] == 200.0 and r["releases_per_s"] == 100.0
    # trying from 0 ms until 1's ok at 2 ms; nobody was trying between 3 and 6 ms nor 7 and 8
    assert r["longest_wait_s"] == 0.002 and r["longest_wait_from_s"] == 0.0
    assert [p[2] for p in r["series"]] == ["ok", "fail", "info", "ok"]


def test_perf_never_granted_and_series_cap() -> None:
    ops: list[Op] = []
    for i in range(6000):
        ops += [
            Op(2 * i, 10 * i, i, "invoke", "acquire", "k"),
            Op(2 * i + 1, 10 * i + 5, i, "fail", "acquire", "k"),
        ]
    r = perf.check(ops)
    assert r["valid"] == "unknown" and len(r["series"]) <= 5000 and r["series_step"] == 2
    assert perf.check([])["valid"] is None


def test_check_all_and_exit_codes() -> None:
    good = hist(*session(1, 1), *session(2, 2))
    r = checkers.check_all(good)
    json.dumps(r)
    assert r["valid"] is True and checkers.exit_code(r["valid"]) == 0
    assert set(r["checkers"]) == {"mutex", "fencing", "perf"}
    bad = checkers.check_all(revoked("ok"), fencing_enforced=True)
    assert bad["valid"] is False and checkers.exit_code(bad["valid"]) == 1
    assert bad["checkers"]["mutex"]["violations"][0]["kind"] == "revoked-while-held"
    assert checkers.combine([True, None, "unknown"]) == "unknown"
    assert checkers.combine([True, False, "unknown"]) is False
    assert checkers.combine([None, True]) is True and checkers.combine([None]) is None
    assert [checkers.exit_code(v) for v in (True, False, "unknown", None)] == [0, 1, 2, 2]


def test_wgl_register_and_counter_models() -> None:
    def ops(*evs: tuple[Any, ...]) -> list[Op]:
        return [Op(i, i, p, t, f, "r", v) for i, (p, t, f, v) in enumerate(evs)]

    ok_reg = ops(
        (1, "invoke", "write", 1),
        (2, "invoke", "read", None),
        (2, "ok", "read", 1),  # concurrent with the write: may see it
        (1, "ok", "write", 1),
        (1, "invoke", "cas", [1, 2]),
        (1, "ok", "cas", [1, 2]),
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
    )
    assert wgl.check(ok_reg, model="register")["valid"] is True
    stale = ok_reg[:6] + ops((2, "invoke", "read", None), (2, "ok", "read", 1))
    for i, o in enumerate(stale):
        o.index = o.time = i
    assert wgl.check(stale, model="register")["valid"] is False
    counter = ops(
        (1, "invoke", "add", 2),
        (1, "info", "add", None),  # may or may not have happened
        (2, "invoke", "read", None),
        (2, "ok", "read", 2),
        (3, "invoke", "add", 1),
        (3, "ok", "add", 1),
        (2, "invoke", "read", None),
        (2, "ok", "read", 4),  # 2 + 1 = 3, never 4
    )
    assert wgl.check(counter[:4], model="counter")["valid"] is True
    assert wgl.check(counter, model="counter")["valid"] is False
    with pytest.raises(ValueError, match="unknown model 'queue'; valid: counter, mutex, register"):
        wgl.check([], model="queue")
