"""Whose fault damaged data is (checkers.blame), on hand-written histories: a lost update or a
slot run twice is the lock's only when two clients acted as holder at once around it (or a write
went out without the lock); otherwise the store's or the scheduler's. Also the non-durable
excuse of the set checker and the stored-run path through ``harness check``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers import jobs
from checkers import set as set_checker
from checkers.blame import Acting
from checkers.history import Op

from .conftest import harness

MS = 1_000_000
J = "job"  # the jobs workload's lock and exec key


class H:
    """A history written event by event, each at the given ms, indexes in order."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def ev(self, ms: float, p: Any, t: str, f: str, key: Any = "k", value: Any = None) -> H:
        self.ops.append(Op(len(self.ops), int(ms * MS), p, t, f, key, value))
        return self

    def hold(self, p: int, a: float, r: float, key: Any = "k") -> H:
        """p holds key from its acquire's ok at ``a`` ms to its release's invocation at ``r``."""
        self.ev(a - 0.5, p, "invoke", "acquire", key).ev(a, p, "ok", "acquire", key)
        self.ev(r, p, "invoke", "release", key).ev(r + 0.5, p, "ok", "release", key)
        return self

    def add(self, p: int, ms: float, el: int, outcome: str = "ok", key: Any = "k") -> H:
        return self.ev(ms, p, "invoke", "add", key, el).ev(ms + 0.1, p, outcome, "add", key, el)

    def read(self, ms: float, els: list[int], key: Any = "k") -> H:
        return self.ev(ms, 99, "invoke", "read", key).ev(ms + 1, 99, "ok", "read", key, els)

    def exec(self, p: int, ms: float, slot: int, dur: float = 5) -> H:
        v = {"slot": slot, "period": 100}
        self.ev(ms, p, "invoke", "exec", "job", v)
        return self.ev(ms + dur, p, "ok", "exec", "job", v | {"duration": dur})


def _sorted(h: H) -> list[Op]:
    return sorted(h.ops, key=lambda o: (o.time, o.index))


# -- acting intervals -----------------------------------------------------------------------------


def test_acting_windows_are_where_two_clients_acted_at_once() -> None:
    h = H().hold(1, 10, 30).hold(2, 20, 40).hold(3, 50, 60)
    a = Acting(_sorted(h))
    assert a.locked
    assert a.at_once == {"k": [(20 * MS, 30 * MS)]}
    assert a.broken("k", 25 * MS, 26 * MS) and a.broken("k", 0, 20 * MS)
    assert not a.broken("k", 31 * MS, 100 * MS)
    assert a.hold_start(2, "k", 35 * MS) == 20 * MS and a.hold_start(2, "k", 45 * MS) is None


def test_a_holder_that_never_releases_acts_to_the_end() -> None:
    h = H().ev(1, 1, "invoke", "acquire").ev(2, 1, "ok", "acquire").hold(2, 500, 510)
    assert Acting(_sorted(h)).at_once == {"k": [(500 * MS, 510 * MS)]}


def test_an_owner_acquiring_again_is_one_owner_not_two() -> None:
    h = H().ev(1, 1, "ok", "acquire").ev(5, 1, "ok", "acquire").ev(9, 1, "invoke", "release")
    a = Acting(_sorted(h))
    assert a.spans[(1, "k")] == [(1 * MS, 9 * MS)] and a.at_once == {}


def test_a_failed_release_still_ends_acting() -> None:
    """The holder stopped acting when it invoked release, whatever the outcome: a later grant
    is no concurrent writer (the mutex model may still call it a violation)."""
    h = H().ev(1, 1, "ok", "acquire").ev(5, 1, "invoke", "release").ev(6, 1, "fail", "release")
    h.hold(2, 7, 9)
    assert Acting(_sorted(h)).at_once == {}


# -- lost updates ---------------------------------------------------------------------------------


def _lost_by_overlap() -> H:
    """1 and 2 both hold k at once; 1 writes {1}, then 2 writes back the {} it read: 1 is lost."""
    h = H().hold(1, 10, 30).hold(2, 15, 40)
    return h.add(1, 20, 1).add(2, 35, 2).read(100, [2])


def test_a_lost_update_with_two_holders_at_once_is_the_locks() -> None:
    r = set_checker.check(_sorted(_lost_by_overlap()))
    assert r["valid"] is False and r["lost_count"] == 1
    assert (r["blame"], r["lost_by_lock"], r["lost_by_store"]) == ("lock", 1, 0)
    assert r["lost"][0]["blame"] == "lock"
    assert r["summary"] == (
        "1 of 2 acknowledged updates were lost (50%), two clients acting as holder at once "
        "(the lock's fault)"
    )


def test_a_lost_update_under_disjoint_holds_is_the_stores() -> None:
    """The store forgot an acknowledged write (a restart without persistence) while every
    holder held alone: no writer could have overwritten it."""
    h = H().hold(1, 10, 20).add(1, 15, 1).hold(2, 30, 40).add(2, 35, 2).read(100, [2])
    r = set_checker.check(_sorted(h))
    assert r["valid"] is False
    assert (r["blame"], r["lost_by_lock"], r["lost_by_store"]) == ("store", 0, 1)
    assert r["lost"][0]["blame"] == "store"
    assert r["summary"] == (
        "1 of 2 acknowledged updates were lost (50%) with no two clients acting as holder at "
        "once (the store lost them)"
    )


def test_overlap_after_the_add_and_before_the_read_blames_the_lock() -> None:
    """A stale writer that read before the add and wrote after it: the overlap came later than
    the lost add's hold, but before the final read."""
    h = H().hold(1, 10, 20).add(1, 15, 1).hold(2, 30, 50).hold(3, 40, 60).read(100, [])
    r = set_checker.check(_sorted(h))
    assert (r["blame"], r["lost_by_lock"]) == ("lock", 1)


def test_overlap_only_before_the_lost_adds_hold_leaves_it_to_the_store() -> None:
    h = H().hold(1, 10, 30).hold(2, 20, 40).add(1, 25, 1).add(2, 35, 2)
    h.hold(3, 50, 60).add(3, 55, 3).read(100, [1, 2])
    r = set_checker.check(_sorted(h))
    assert (r["blame"], r["lost_by_lock"], r["lost_by_store"]) == ("store", 0, 1)


def test_losses_of_both_kinds_are_counted_apart() -> None:
    h = _lost_by_overlap()
    h.hold(1, 10, 20, key="j").add(1, 15, 7, key="j").read(200, [], key="j")
    r = set_checker.check(_sorted(h))
    assert (r["blame"], r["lost_by_lock"], r["lost_by_store"]) == ("both", 1, 1)
    assert r["summary"].endswith(
        ": 1 with two clients acting as holder at once (the lock's fault), 1 with no two "
        "clients acting as holder at once (the store lost them)"
    )


def test_a_write_without_the_lock_makes_its_key_the_locks() -> None:
    h = H().hold(1, 10, 20).add(1, 15, 1).add(5, 50, 2).read(100, [2])
    r = set_checker.check(_sorted(h))
    assert (r["blame"], r["lost_by_lock"]) == ("lock", 1)


def test_a_certainly_failed_write_without_the_lock_changes_nothing() -> None:
    h = H().hold(1, 10, 20).add(1, 15, 1).add(5, 50, 2, outcome="fail").read(100, [])
    assert set_checker.check(_sorted(h))["blame"] == "store"


def test_a_set_history_without_lock_ops_leaves_blame_undecided() -> None:
    h = H().add(1, 15, 1).add(2, 35, 2).read(100, [2])
    r = set_checker.check(_sorted(h))
    assert r["valid"] is False and r["blame"] is None
    assert r["lost_by_lock"] is None and "blame" not in r["lost"][0]
    assert r["summary"] == "1 of 2 acknowledged updates were lost (50%)"


def test_no_loss_no_blame() -> None:
    h = H().hold(1, 10, 20).add(1, 15, 1).read(100, [1])
    r = set_checker.check(_sorted(h))
    assert r["valid"] is True and r["blame"] is None and r["lost_by_store"] == 0


# -- the non-durable excuse -----------------------------------------------------------------------

SETTING = "redis persistence=off (no append-only file, no snapshots)"


def test_a_store_loss_under_a_declared_non_durable_setting_is_unknown() -> None:
    h = H().hold(1, 10, 20).add(1, 15, 1).hold(2, 30, 40).add(2, 35, 2).read(100, [2])
    r = set_checker.excuse(set_checker.check(_sorted(h)), SETTING)
    assert r["valid"] == "unknown" and r["blame"] == "store" and r["non_durable"] == SETTING
    reason = (
        f"the store lost acknowledged writes under a non-durable setting, {SETTING}: "
        "not the lock's fault"
    )
    assert r["unknown_because"] == [reason]
    assert r["summary"].startswith(f"unknown ({reason}); 1 of 2 acknowledged updates were lost")


def test_the_lock_is_never_excused() -> None:
    for h in (_lost_by_overlap(), _lost_by_overlap().hold(1, 200, 210, key="j")):
        r = set_checker.check(_sorted(h))
        assert set_checker.excuse(r, SETTING)["valid"] is False


def test_a_durable_store_that_lost_writes_stays_invalid() -> None:
    h = H().hold(1, 10, 20).add(1, 15, 1).read(100, [])
    r = set_checker.excuse(set_checker.check(_sorted(h)), None)
    assert r["valid"] is False and r["blame"] == "store"


def test_an_unexpected_element_is_not_excused() -> None:
    h = H().hold(1, 10, 20).add(1, 15, 1).read(100, [42])
    r = set_checker.excuse(set_checker.check(_sorted(h)), SETTING)
    assert r["valid"] is False


# -- double executions ----------------------------------------------------------------------------


def test_a_slot_run_twice_by_two_holders_at_once_is_the_locks() -> None:
    h = H().hold(1, 100, 160, J).exec(1, 101, 1).hold(2, 130, 190, J).exec(2, 131, 1)
    r = jobs.check(_sorted(h))
    assert r["valid"] is False and r["double_executions"] == 1
    assert (r["blame"], r["double_by_lock"], r["double_by_scheduler"]) == ("lock", 1, 0)
    assert r["double_slots"][0]["blame"] == "lock"
    assert "(1 double executions), two clients acting as holder at once" in r["summary"]


def test_a_slot_run_again_after_a_release_is_the_schedulers() -> None:
    """lockAtLeastFor shorter than the nodes' skew: the second node found the lock free and ran
    the slot again. The lock kept mutual exclusion: unknown, not invalid."""
    h = H().hold(1, 100, 110, J).exec(1, 101, 1).hold(2, 150, 160, J).exec(2, 151, 1)
    r = jobs.check(_sorted(h))
    assert r["valid"] == "unknown" and r["double_executions"] == 1
    assert (r["blame"], r["double_by_lock"], r["double_by_scheduler"]) == ("scheduler", 0, 1)
    assert r["unknown_because"] == [jobs.SCHEDULER_REASON]
    assert (
        "with no two clients acting as holder at once (the scheduler ran them again)"
        in (r["summary"])
    )


def test_an_execution_outside_any_hold_is_the_locks() -> None:
    h = H().hold(1, 100, 110, J).exec(1, 101, 1).hold(2, 150, 160, J).exec(3, 170, 1)
    r = jobs.check(_sorted(h))
    assert r["valid"] is False and r["blame"] == "lock"


def test_double_slots_of_both_kinds() -> None:
    h = H().hold(1, 100, 160, J).exec(1, 101, 1).hold(2, 130, 190, J).exec(2, 131, 1)
    h.hold(1, 300, 310, J).exec(1, 301, 3).hold(2, 350, 360, J).exec(2, 351, 3)
    r = jobs.check(_sorted(h))
    assert r["valid"] is False
    assert (r["blame"], r["double_by_lock"], r["double_by_scheduler"]) == ("both", 1, 1)


def test_a_jobs_history_without_lock_ops_stays_invalid_with_blame_undecided() -> None:
    h = H().exec(1, 101, 1).exec(2, 151, 1)
    r = jobs.check(_sorted(h))
    assert r["valid"] is False and r["blame"] is None and r["double_by_lock"] is None


# -- a stored run through `harness check` -----------------------------------------------------------


def _run_dir(tmp_path: Path, h: H, store: str, servers: list[dict], non_durable: list[str]) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    config = {
        "backend": "redis",
        "workload": "lock-set",
        "workload_opts": {"store": store},
        "nemesis": ["kill"],
        "duration_s": 1.0,
        "servers": servers,
        "non_durable": non_durable,
    }
    (d / "config.json").write_text(json.dumps(config))
    lines = [json.dumps(o.to_dict()) for o in h.ops]
    (d / "history.jsonl").write_text("\n".join(lines) + "\n")
    return d


NOTICE_LINE = (
    f"non-durable setting in effect: redis {SETTING}: a killed server restarts empty: every lock "
    "and fence counter is forgotten"
)
LOCK_ROW = {"kind": "redis", "role": "lock", "name": "n1", "durability": SETTING}


def _store_loss() -> H:
    return H().hold(1, 10, 20).add(1, 15, 1).hold(2, 30, 40).add(2, 35, 2).read(100, [2])


def test_check_of_a_stored_run_excuses_a_set_on_the_non_durable_lock_server(tmp_path) -> None:
    d = _run_dir(tmp_path, _store_loss(), "lock", [LOCK_ROW], [NOTICE_LINE])
    r = harness("check", str(d))
    results = json.loads((d / "results.json").read_text())
    s = results["checkers"]["set"]
    assert s["valid"] == "unknown" and s["blame"] == "store", s["summary"]
    assert results["valid"] == "unknown" and r.returncode == 2, r.stdout


def test_check_of_a_stored_run_with_its_set_on_a_durable_server_is_invalid(tmp_path) -> None:
    """The set on a store of its own (durable), the lock server non-durable: the store that lost
    the writes was not declared non-durable, so the loss is a store failure, INVALID."""
    store_row = {"kind": "redis", "role": "store", "name": "store1", "durability": "always"}
    d = _run_dir(tmp_path, _store_loss(), "redis", [LOCK_ROW, store_row], [NOTICE_LINE])
    r = harness("check", str(d))
    results = json.loads((d / "results.json").read_text())
    assert results["checkers"]["set"]["blame"] == "store"
    assert results["valid"] is False and r.returncode == 1, r.stdout


# -- campaign statistics and JUnit ----------------------------------------------------------------


def test_campaign_statistics_count_the_stores_losses_apart() -> None:
    from harness.campaign.stats import damage, first_violation_s, violation_kinds

    results = {
        "checkers": {
            "set": {
                "lost_count": 5,
                "lost_by_lock": 2,
                "lost_by_store": 3,
                "blame": "both",
                "lost": [{"ok_time": 1e9, "blame": "store"}, {"ok_time": 4e9, "blame": "lock"}],
            },
            "jobs": {
                "double_executions": 2,
                "double_by_lock": 0,
                "double_by_scheduler": 2,
                "blame": "scheduler",
                "period_ms": 100,
                "double_slots": [{"slot": 12, "blame": "scheduler"}],
            },
        }
    }
    assert violation_kinds(results) == {
        "lost-update": 2,
        "lost-update-by-store": 3,
        "double-execution-by-scheduler": 2,
    }
    assert first_violation_s(results) == 4.0  # the lock's loss; not the store's, nor the slot
    d = damage(results)
    assert (d["lost_updates"], d["lost_updates_by_store"]) == (5, 3)
    assert (d["double_executions"], d["double_executions_by_scheduler"]) == (2, 2)


def test_junit_says_whose_fault_the_damage_is(tmp_path: Path) -> None:
    from xml.etree import ElementTree as ET

    from harness.exports.junit import write_junit

    h = H().hold(1, 10, 20).add(1, 15, 1).hold(2, 30, 40).add(2, 35, 2).read(100, [2])
    s = set_checker.excuse(set_checker.check(_sorted(h)), SETTING)
    results = {"valid": "unknown", "summary": "unknown; set: ...", "checkers": {"set": s}}
    path = write_junit(tmp_path / "j.xml", {"backend": "redis", "workload": "lock-set"}, results)
    cases = {c.get("name"): c for c in ET.parse(path).getroot().iter("testcase")}
    verdict = cases["verdict"].find("error")
    assert verdict is not None
    assert "blame: lost updates: 0 the lock's (two clients acting as holder at once), 1 the " in (
        verdict.get("message") or ""
    )
    set_case = cases["set"].find("error")  # unknown, not a failure: the lock is not accused
    assert set_case is not None and "non-durable setting" in (set_case.get("message") or "")


# -- the report's first sentence ------------------------------------------------------------------


def _results(h: H, setting: str | None, mutex_valid: bool = True) -> dict[str, Any]:
    s = set_checker.excuse(set_checker.check(_sorted(h)), setting)
    return {"checkers": {"mutex": {"valid": mutex_valid, "violation_kinds": {}}, "set": s}}


def test_headline_blames_a_non_durable_store_not_the_lock() -> None:
    from reports.overview import meaning

    m = meaning("unknown", _results(_store_loss(), SETTING), "kill")
    assert m.startswith(
        "The store lost 1 acknowledged update while the lock kept mutual exclusion: its server "
        f"ran {SETTING}, a setting the run declared non-durable: not the lock's fault."
    )
    assert "unsafe" not in m


def test_headline_blames_a_durable_store_that_lost_writes() -> None:
    from reports.overview import meaning

    m = meaning("invalid", _results(_store_loss(), None), "kill")
    assert m == (
        "The store lost 1 acknowledged update while the lock kept mutual exclusion: the store "
        "itself lost acknowledged writes."
    )


def test_headline_says_the_lock_failed_when_it_did() -> None:
    from reports.overview import meaning

    m = meaning("invalid", _results(_lost_by_overlap(), SETTING, mutex_valid=False), "none")
    assert m.startswith("This lock is unsafe without faults:") and "1 acknowledged update" in m
    assert "The store lost" not in m


def test_headline_with_both_tells_the_locks_part_first_then_the_stores() -> None:
    from reports.overview import meaning

    h = _lost_by_overlap().hold(1, 10, 20, key="j").add(1, 15, 7, key="j")
    m = meaning("invalid", _results(h.read(200, [], key="j"), None, False), "kill")
    assert m.startswith(
        "This lock is unsafe under kill: 1 acknowledged update were lost. The store lost 1 other "
        "acknowledged update while no two clients acted as holder at once"
    )


# -- the at-once sweep against a brute force --------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 60), st.integers(1, 30)), max_size=12),
    st.integers(0, 100),
    st.integers(0, 100),
)
def test_at_once_agrees_with_every_pair(
    spans: list[tuple[int, int, int]], t0: int, t1: int
) -> None:
    """Each process's spans made disjoint (a process acts once at a time); two clients acted at
    once in [t0, t1] iff some pair of spans of distinct processes shares a moment there."""
    h, ends, kept = H(), {}, []
    for p, start, length in sorted(spans, key=lambda x: x[1]):
        if start <= ends.get(p, -1):
            continue
        ends[p] = start + length
        kept.append((p, start, start + length))
        h.ev(start, p, "ok", "acquire").ev(start + length, p, "invoke", "release")
    a = Acting(_sorted(h))
    lo, hi = min(t0, t1), max(t0, t1)
    brute = any(
        p != q and max(s1, s2, lo) <= min(e1, e2, hi) for p, s1, e1 in kept for q, s2, e2 in kept
    )
    assert a.broken("k", lo * MS, hi * MS) == brute
