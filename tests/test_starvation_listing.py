"""The starvation rule judges only what the checkers listed: when they listed fewer violations
than they found, one left out may be clear of every stall, so the run stays INVALID."""

from __future__ import annotations

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
