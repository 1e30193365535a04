"""Availability in time (``checkers.availability.over_time``), on synthetic histories: the share
of key-time in which the lock was held or grantable, per fault window and outside, and the time
from each heal to the next grant. docs/design.md, "Availability in time", defines it."""

from __future__ import annotations

import pytest

from checkers.availability import over_time, unavailable
from checkers.history import NEMESIS, Op

MS = 1_000_000


class H:
    """A history written in ms, one op at a time."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, t_ms: float, p, type_: str, f: str, key=None, error=None, value=None) -> H:
        self.ops.append(Op(len(self.ops), int(t_ms * MS), p, type_, f, key, value, error))
        return self

    def hold(self, p: int, key: str, t0: float, t_ok: float, t_rel: float) -> H:
        """An acquire invoked at t0, granted at t_ok, released at t_rel."""
        self.op(t0, p, "invoke", "acquire", key).op(t_ok, p, "ok", "acquire", key, value=1)
        return self.op(t_rel, p, "invoke", "release", key).op(t_rel + 1, p, "ok", "release", key)

    def failed(self, p: int, key: str, t0: float, t1: float, type_: str = "fail") -> H:
        return self.op(t0, p, "invoke", "acquire", key).op(t1, p, type_, "acquire", key, "down")

    def fault(self, t0: float, t1: float | None, name: str = "kill") -> H:
        self.op(t0, NEMESIS, "invoke", f"start-{name}").op(t0 + 1, NEMESIS, "ok", f"start-{name}")
        if t1 is not None:
            self.op(t1 - 1, NEMESIS, "invoke", f"stop-{name}").op(t1, NEMESIS, "ok", f"stop-{name}")
        return self


def test_a_lock_that_always_grants_is_fully_available_and_idle_time_counts_as_up() -> None:
    # gaps between holds (nobody asking) are up: the last evidence was a grant
    h = H().hold(0, "a", 0, 2, 100).hold(1, "a", 300, 301, 400).hold(0, "a", 900, 902, 1000)
    got = over_time(h.ops)
    assert got["keys"] == 1 and got["window_count"] == 0
    assert got["outside"]["available_share"] == 1.0
    assert got["outside"]["unavailable_s"] == 0
    assert (got["outside"]["attempts"], got["outside"]["ok"]) == (3, 3)


def test_a_failure_with_nobody_holding_marks_the_key_down_until_the_next_grant() -> None:
    h = H().hold(0, "a", 0, 1, 100)
    h.fault(1000, 3000)
    h.failed(1, "a", 1200, 1210)  # down from 1200 ...
    h.failed(2, "a", 2000, 2005, "info")
    h.hold(1, "a", 3100, 3300, 3400)  # ... to this grant, at 3300
    h.hold(2, "a", 3500, 3501, 4000)
    got = over_time(h.ops)
    down, (t0, t1) = unavailable(h.ops)
    assert down == {"a": [(1200 * MS, 3300 * MS)]}
    assert (t0, t1) == (0, 4001 * MS)
    (w,) = got["windows"]
    assert w["fault"] == "kill" and w["start_s"] == 1.0 and w["end_s"] == 3.0
    assert w["unavailable_s"] == pytest.approx(1.8)  # 1200 to 3000
    assert w["available_share"] == pytest.approx(0.1)
    assert w["healed"] and w["heal_to_grant_s"] == pytest.approx(0.3)  # the grant at 3300
    assert (w["attempts"], w["ok"]) == (2, 0)
    assert got["outside"]["unavailable_s"] == pytest.approx(0.3)  # 3000 to 3300, after the heal
    assert got["heal_to_grant_s"] == {"max": 0.3, "median": 0.3}


def test_retrying_faster_or_slower_changes_the_attempts_never_the_time() -> None:
    """The honest part: a retry loop's thousand failures and a backed-off client's two, between
    the same first failure and the same grant, are the same outage."""

    def run(retries: list[float]) -> dict:
        h = H().hold(0, "a", 0, 1, 100).fault(500, 2500)
        for i, t in enumerate(retries):
            h.failed(1 + i % 3, "a", t, t + 1)
        return dict(over_time(h.hold(1, "a", 2600, 2601, 2700).ops))

    hot = run([600 + 2 * i for i in range(900)])
    paced = run([600, 2100])
    for side in ("inside", "outside"):
        assert hot[side]["available_share"] == paced[side]["available_share"]
    assert hot["inside"]["attempts"] == 900 and paced["inside"]["attempts"] == 2
    assert hot["windows"][0]["heal_to_grant_s"] == paced["windows"][0]["heal_to_grant_s"] == 0.101


def test_a_refusal_while_another_client_holds_the_key_is_the_lock_working() -> None:
    h = H().fault(0, 1000)
    h.op(10, 0, "invoke", "acquire", "a").op(11, 0, "ok", "acquire", "a", value=1)
    h.failed(1, "a", 100, 600)  # NotAcquired: client 0 held it the whole wait
    h.op(700, 0, "invoke", "release", "a").op(701, 0, "ok", "release", "a")
    got = over_time(h.ops)
    assert got["windows"][0]["available_share"] == 1.0
    assert unavailable(h.ops)[0] == {"a": []}


def test_a_wait_past_the_prompt_bound_with_nobody_holding_is_down() -> None:
    # an election: the acquire hangs 2.5 s with no holder, then is granted
    h = H().hold(0, "a", 0, 1, 100).hold(1, "a", 1000, 3500, 3600)
    down, _ = unavailable(h.ops, prompt_ms=1000)
    assert down == {"a": [(2000 * MS, 3500 * MS)]}


def test_each_key_counts_for_its_share_of_the_time() -> None:
    h = H().hold(0, "a", 0, 1, 50).hold(1, "b", 0, 1, 50)
    h.failed(0, "a", 100, 110)  # key a down from 100 to the end, b fine
    h.hold(1, "b", 900, 901, 1000)
    got = over_time(h.ops)
    assert got["keys"] == 2
    assert got["outside"]["available_share"] == pytest.approx(1 - 0.9 / 2, abs=1e-3)


def test_a_fault_never_healed_has_no_heal_to_grant() -> None:
    h = H().hold(0, "a", 0, 1, 50).fault(100, None)
    h.failed(1, "a", 200, 210).hold(2, "a", 300, 301, 400)
    (w,) = over_time(h.ops)["windows"]
    assert w["heal_to_grant_s"] is None and not w["healed"]
    assert w["end_s"] == pytest.approx(0.401)


def test_an_empty_or_lockless_history_has_no_share() -> None:
    assert over_time([])["outside"]["available_share"] is None
    ops = H().op(0, 0, "invoke", "read", "k").op(1, 0, "ok", "read", "k").ops
    got = over_time(ops)
    assert got["keys"] == 0 and got["outside"]["available_share"] is None


def test_a_campaign_cell_pools_time_over_key_seconds_and_lists_heals() -> None:
    from checkers.availability import measure
    from harness.campaign.stats import _heals, _pooled

    h = H().hold(0, "a", 0, 1, 100).fault(1000, 3000)
    h.failed(1, "a", 1200, 1210).hold(1, "a", 3100, 3300, 3400).hold(2, "a", 3500, 3501, 4000)
    one = {"availability": measure(h.ops)}
    assert one["availability"]["inside"]["available_share"] == pytest.approx(0.1)
    assert one["availability"]["heal_to_grant_s"] == [0.3]
    lost = H().hold(0, "a", 0, 1, 10).fault(20, 40).failed(1, "a", 25, 30).failed(2, "a", 50, 60)
    never = {"availability": measure(lost.ops)}  # down from 25 ms, inside a 20 ms window
    assert never["availability"]["inside"]["available_share"] == pytest.approx(0.25)
    pooled = _pooled([one, never], "inside")
    # 2 s at 10% and 0.02 s at 25%: pooled over key-seconds, not averaged over runs
    assert pooled["available_share"] == pytest.approx((2 * 0.1 + 0.02 * 0.25) / 2.02, abs=1e-3)
    assert _heals([one, never]) == {"median": 0.3, "max": 0.3, "heals": 2, "no_grant": 1}


def test_the_reports_card_shows_availability_in_time_with_the_attempts_beside_it() -> None:
    """The report's first screen gives availability in time (the seconds-weighted share inside
    and outside faults), the share during faults, and the attempts as a side figure; a run
    without the availability figures (older runs) keeps the share of attempts."""
    from reports.overview import cards

    perf = {"checkers": {"perf": {"success_ratio": 0.25, "attempted_acquires": 400}}}
    av = {
        "inside": {"seconds": 2.0, "available_share": 0.5},
        "outside": {"seconds": 8.0, "available_share": 1.0},
    }
    card = {c.label: c for c in cards(perf | {"availability": av})}["available"]
    assert card.value == "90.0%"  # (2 * 0.5 + 8 * 1.0) / 10, not 25% of attempts
    assert "during faults 50.0%" in card.sub and "25.0% of 400 acquires ok" in card.sub
    old = {c.label: c for c in cards(perf)}
    assert "available" not in old and old["acquire success"].value == "25.0%"


def test_key_times_past_floats_exact_integers_are_swept_in_windows_without_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The columns' sweep keeps a key and a time as one int64 key-time (key * (t1 + 1) + time);
    past 2^53 those are not exact as floats, and the windows a long sweep is cut into must still
    cover every span to its end: the same measure as one sweep, and the one a hand count gives."""
    import numpy as np

    from checkers import availability

    t1 = 10**12
    big = t1 + 1
    keys = np.array([20_000, 20_000, 20_001])
    lo = keys * big + np.array([5, 100, 7])
    hi = keys * big + np.array([t1 - 1, 200, t1 - 4])
    held = np.array([False, True, False])
    assert int(float(hi.max())) < int(hi.max())  # the case: a float rounds the last end down

    def measure(spans: np.ndarray) -> int:
        return int((spans[:, 1] - spans[:, 0]).sum())

    whole = availability._uncovered(lo, hi, held, 0, t1)
    monkeypatch.setattr(availability, "SWEEP_AT_ONCE", 1)
    windows = availability._uncovered(lo, hi, held, 0, t1)
    assert measure(whole) == measure(windows) == (100 - 5) + (t1 - 1 - 200) + (t1 - 4 - 7)
