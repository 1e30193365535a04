"""A CI gate on a Python lock library through its plug-in, with a seeded bug that proves the
gate can go red. The seeded-bug subclass lives only in the tests: ``lock_harness(backend=Cls)``
registers it for the call (``backends.registry.registered``), no entry point, no monkeypatch."""

import os
import uuid

from mylock_harness import MyLockBackend, MyLockClient

from backends.base import Lease
from checkers.results import Verdict


class SeededBugClient(MyLockClient):
    def acquire(self, key, ttl_ms, wait_ms):
        token = uuid.uuid4().hex
        self.r.set(f"mylock:{key}", token, px=ttl_ms)  # the bug: no NX, always "acquired"
        lock = self.r.lock(f"mylock:{key}", timeout=ttl_ms / 1000)
        lock.local.token = token.encode()
        return Lease(key, token, None, data=lock)


class SeededBugBackend(MyLockBackend):
    name = "mylock-seeded-bug"

    def connect(self, endpoints, client_id, params):
        return SeededBugClient(endpoints[0], params)


BACKEND = SeededBugBackend if os.environ.get("SEEDED_BUG") else MyLockBackend


def test_no_two_holders_without_faults(lock_harness):
    result = lock_harness(
        backend=BACKEND, nemesis=[], time_limit=3, concurrency=4, keys=1, hold_ms=5,
        render_report=False,
    )  # fmt: skip
    assert result.verdict is Verdict.VALID, result.summary
    assert result.violation_count == 0, result.violation_kinds
    assert result.hold_count >= 1  # evidence: the lock was taken (VALID says so too)
