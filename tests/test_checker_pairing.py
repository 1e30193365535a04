"""The one invoke/complete pairing every checker shares, and the checker map (compose)."""

from __future__ import annotations

from checkers import History, compose, lock_checkers, perf
from checkers.history import Op
from checkers.pairing import NEVER_RETURNED, pair


def _ops(*rows) -> list[Op]:
    return [Op(i, i, p, t, f, k, v) for i, (p, t, f, k, v) in enumerate(rows)]


def test_pairing_rules() -> None:
    ops = _ops(
        (0, "invoke", "acquire", "a", None),  # 0
        (0, "ok", "acquire", "a", 1),  # 1: paired with 0
        (1, "invoke", "acquire", "a", None),  # 2: never completed before 1 invokes again
        (1, "invoke", "release", "a", None),  # 3: invoked while pending
        (1, "ok", "release", "a", None),  # 4: paired with 3
        (2, "ok", "acquire", "b", 7),  # 5: no invocation, no previous event
        ("nemesis", "invoke", "start-kill", None, None),  # 6: left out
        (0, "invoke", "release", "a", 1),  # 7: never completed at all
        (3, "info", "acquire", "c", None),  # 8: no invocation
        (3, "invoke", "acquire", "c", None),  # 9: acted after info
    )
    got = pair(ops)
    assert got.pairs == [
        (0, "acquire", "a", "ok", 0, 1),
        (1, "acquire", "a", "info", 2, NEVER_RETURNED),
        (1, "release", "a", "ok", 3, 4),
        (2, "acquire", "b", "ok", -1, 5),
        (3, "acquire", "c", "info", -1, 8),
        (0, "release", "a", "info", 7, NEVER_RETURNED),
        (3, "acquire", "c", "info", 9, NEVER_RETURNED),
    ]
    assert got.anomalies == {
        "acted after info": 1,
        "invoked while pending": 1,
        "no invocation": 2,
    }
    # a completion after the process's previous event is taken as invoked right after it
    later = pair(_ops((0, "invoke", "acquire", "a", None), (0, "ok", "acquire", "a", 1),
                      (1, "invoke", "acquire", "a", None), (0, "ok", "release", "a", None)))  # fmt: skip
    assert later.pairs[1] == (0, "release", "a", "ok", 2, 3)
    assert pair(ops, frozenset({"release"})).pairs == [
        (1, "release", "a", "ok", 3, 4),
        (0, "release", "a", "info", 7, NEVER_RETURNED),
    ]


def test_compose_runs_a_checker_map_over_one_shared_history() -> None:
    calls: list[str] = []

    def derive(srt):
        calls.append("derived")
        return len(srt)

    def count(h: History) -> dict:
        return {"valid": True, "summary": f"{h.derive(derive)} ops"}

    def never(h: History) -> dict:
        return {"valid": False, "summary": f"saw {h.derive(derive)} ops"}

    ops = _ops((0, "invoke", "acquire", "a", None), (0, "ok", "acquire", "a", 1))
    ok = compose({"count": count, "again": count})(ops)
    assert ok["valid"] is True and ok["summary"] == "valid; count: 2 ops"
    assert calls == ["derived"]  # derived once, shared by both checkers
    bad = compose({"count": count, "never": never})(ops)
    assert bad["valid"] is False and bad["summary"] == "invalid; never: saw 2 ops"
    assert set(bad["checkers"]) == {"count", "never"}
    # the lock map is the one a mutex run composes; perf alone is a map of one
    assert set(lock_checkers()) == {"mutex", "fencing", "perf"}
    alone = compose({"perf": lambda h: perf.check(h.ops, presorted=True)})(ops)
    assert alone["checkers"]["perf"]["attempted_acquires"] == 1
