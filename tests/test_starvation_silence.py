"""A stall excuses a violation only when the client it blames fell silent: a pool's window
(its GIL saturated, one thread's runqueue wait) covers all of that worker's clients, but a
client that kept recording ops through the moment it lost its lease was not starved then."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checkers.columns import OpsView, read_history
from checkers.history import Op
from checkers.starvation import GIL, assess

from .test_starvation import LEASE, MS, _invalid, _record, _window

_POOL = {"pid": 100, "slot": 0, "kind": GIL, "start": 1100 * MS, "end": 3100 * MS}


def _pool_record() -> dict[str, Any]:
    """A GIL window of one worker running clients 0-3 of 8, 1.1-3.1 s."""
    return _record([_POOL | {"clients": [0, 4]}], clients=8) | {"one_client_per_worker": False}


def _busy(process: int, from_ms: int, to_ms: int, every_ms: int) -> list[Op]:
    """A client's acquire/release pairs, one op every ``every_ms``."""
    out = []
    for i, t in enumerate(range(from_ms, to_ms, every_ms)):
        f = "acquire" if (i // 2) % 2 == 0 else "release"
        out.append(Op(0, t * MS, process, "invoke" if i % 2 == 0 else "ok", f, key="k"))
    return out


def _silent_holder(process: int) -> list[Op]:
    """Acquired at 1.0 s, then nothing until its release at 3.2 s (it was starved)."""
    return [
        Op(0, 990 * MS, process, "invoke", "acquire", key="k"),
        Op(0, 1000 * MS, process, "ok", "acquire", key="k"),
        Op(0, 3200 * MS, process, "invoke", "release", key="k"),
        Op(0, 3210 * MS, process, "fail", "release", key="k"),
    ]


def _indexed(ops: list[Op]) -> list[Op]:
    ops = sorted(ops, key=lambda o: o.time)
    return [Op(i, o.time, o.process, o.type, o.f, key=o.key) for i, o in enumerate(ops)]


def test_a_client_silent_inside_its_stall_is_excused() -> None:
    ops = _indexed(_silent_holder(0) + _busy(1, 0, 5000, 5))  # client 1 is never stalled
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _pool_record(), ops, LEASE)
    assert results["valid"] == "unknown", results["stalls"]
    assert results["stalls"]["violations_in_stalls"] == 1 and "not_silent" not in results["stalls"]
    # a later process of the same client (process % clients) counts as that client
    later = _indexed(_silent_holder(8) + _busy(1, 0, 5000, 5))
    results = _invalid((8, 1, 1000, 2200))
    assess(results, _pool_record(), later, LEASE)
    assert results["valid"] == "unknown", results["stalls"]


def test_a_client_that_kept_recording_through_the_stall_is_not_excused() -> None:
    # the same GIL window, but client 0 recorded an op every 5 ms through the violation: the
    # window covered its worker, not it; its lease was lost to the lock
    ops = _indexed(_busy(0, 0, 5000, 5) + _busy(1, 0, 5000, 5))
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _pool_record(), ops, LEASE)
    assert results["valid"] is False and "unknown_because" not in results, results["stalls"]
    assert results["checkers"]["mutex"]["valid"] is False
    assert results["stalls"]["not_silent"] == 1 and results["stalls"]["violations_in_stalls"] == 0
    # a gap shorter than the threshold (0.25 s) is no silence either
    gappy = [o for o in ops if not (o.process == 0 and 1500 * MS < o.time < 1700 * MS)]
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _pool_record(), gappy, LEASE)
    assert results["valid"] is False and results["stalls"]["not_silent"] == 1
    # one that long, inside the window and the violation: silent, excused
    quiet = [o for o in ops if not (o.process == 0 and 1500 * MS < o.time < 1800 * MS)]
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _pool_record(), quiet, LEASE)
    assert results["valid"] == "unknown", results["stalls"]
    # the same silence outside the stall window excuses nothing
    outside = [o for o in ops if not (o.process == 0 and 3300 * MS < o.time < 3700 * MS)]
    results = _invalid((0, 1, 1000, 3500))
    assess(results, _pool_record(), outside, LEASE)
    assert results["valid"] is False and results["stalls"]["not_silent"] == 1


def test_the_columns_history_is_judged_as_the_objects(tmp_path: Path) -> None:
    """``analyse`` passes the history as read: columns (``OpsView``) for a plain file."""
    path = tmp_path / "history.jsonl"
    for ops, want in (
        (_busy(0, 0, 5000, 5) + _busy(1, 0, 5000, 5), False),
        (_silent_holder(0) + _busy(1, 0, 5000, 5), "unknown"),
    ):
        lines = [json.dumps(o.to_dict()) for o in _indexed(ops)]
        nemesis = {"index": len(lines), "time": 4999 * MS, "process": "nemesis"}
        lines.append(json.dumps(nemesis | {"type": "info", "f": "start-partition"}))
        path.write_text("\n".join(lines) + "\n")
        got = read_history(path).ops
        assert isinstance(got, OpsView)
        for history in (got, list(got)):
            results = _invalid((0, 1, 1000, 2200))
            assess(results, _pool_record(), history, LEASE)
            assert results["valid"] == want, results["stalls"]


def test_a_client_with_no_ops_at_all_is_silent_throughout() -> None:
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _record([_window(0, 1100, 3100)]), _busy(1, 0, 5000, 5), LEASE)
    assert results["valid"] == "unknown", results["stalls"]


def test_a_holds_own_silence_is_no_stall() -> None:
    """A holder sleeps through its critical section (``hold_ms``) and records nothing: that
    silence is the workload's, so only a silence longer than the hold by the threshold excuses."""
    ops = _indexed(_busy(0, 0, 5000, 5) + _busy(1, 0, 5000, 5))
    quiet = [o for o in ops if not (o.process == 0 and 1500 * MS < o.time < 1800 * MS)]
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _pool_record(), quiet, LEASE, quiet_ms=300)  # 0.3 s: a hold's sleep
    assert results["valid"] is False and results["stalls"]["not_silent"] == 1, results["stalls"]
    longer = [o for o in ops if not (o.process == 0 and 1300 * MS < o.time < 1900 * MS)]
    results = _invalid((0, 1, 1000, 2200))
    assess(results, _pool_record(), longer, LEASE, quiet_ms=300)  # 0.6 s > 0.3 s + 0.25 s
    assert results["valid"] == "unknown", results["stalls"]
