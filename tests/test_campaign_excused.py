"""A run the starvation rule excused (the harness starved its own clients) adds no damage and no
"acted at once" to its cell: its stale writes and overlaps are the harness's, not the lock's."""

from __future__ import annotations

from harness.campaign.stats import acted_at_once, damage, harm


def _results(excused: bool) -> dict:
    mutex = {"valid": "unknown" if excused else False, "violation_count": 1, "violations": []}
    mutex |= {"violation_kinds": {"overlap": 1}, "revoked_while_acting": 0}
    fencing = {"valid": "unknown" if excused else False, "stale_accepted": 3}
    return {
        "valid": "unknown" if excused else False,
        "checkers": {"mutex": mutex, "fencing": fencing},
        "stalls": {"excused": excused},
    }


def test_an_excused_run_counts_no_damage_and_nobody_at_once() -> None:
    assert damage(_results(False))["stale_writes_accepted"] == 3
    assert damage(_results(True))["stale_writes_accepted"] is None
    assert acted_at_once(_results(False)) == 1
    assert acted_at_once(_results(True)) is None
    figures = {
        "runs": 2,
        "invalid": 0,
        "unknown": 2,
        "valid": 0,
        "decided": 0,
        "verdict": "unknown",
        "damage": {"stale_writes_accepted": {"runs": 0, "total": None}},
        "acted_at_once": {"runs": 0, "of": 0, "total": 0},
    }
    assert harm(figures)["class"] not in ("damage", "at-once")
