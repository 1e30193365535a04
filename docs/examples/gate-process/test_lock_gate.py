"""A CI gate on a lock library in another language, through its process adapter.

The maintainer's repository holds the adapter (here, the shipped one for redis-semaphore) and
this test; ``pip install lockharness`` brings the ``lock_harness`` fixture. LOCK_ADAPTER picks
the adapter command (the seeded bug proves the gate can go red).
"""

import os

from checkers.results import Verdict

ADAPTER = os.environ.get("LOCK_ADAPTER", "node adapters/node/redis-semaphore.js")


def test_no_two_holders_without_faults(lock_harness):
    result = lock_harness(
        backend="process",
        backend_opts={
            "cmd": ADAPTER,
            "servers": "redis:1",
            "expiry": "ttl",  # what the adapter declares at connect (refresh=false)
            "opts": "refresh=false",
        },
        nemesis=[],
        time_limit=3,
        concurrency=4,
        keys=1,
        hold_ms=5,
        render_report=False,
    )
    # Sharper than the verdict alone: no violation of any kind, and evidence that it ran.
    assert result.verdict is Verdict.VALID, result.summary
    assert result.violation_count == 0, result.violation_kinds
    assert result.hold_count >= 1  # evidence: the lock was taken (VALID says so too)
    assert result.schema_version >= 1
