"""Adapter for pottery's ``Redlock`` (pottery 3), on the same N independent Redis masters.

Algorithm: pottery's Redlock. ``SET redlock:<key> <uuid4> NX PX <auto_release_time>`` on all
masters in parallel threads; held once more than half granted with validity
auto_release_time - elapsed - (auto_release_time * 0.01 + 2 ms) above zero, else it releases
everywhere and (when blocking) retries after a random delay up to 200 ms until the timeout.
``release`` and ``extend`` run Lua compare-and-delete / compare-and-pexpire and return as soon as
more than half the masters did it. ``extend`` always extends by ``auto_release_time`` (set here
to the renew's TTL) and is refused after ``num_extensions`` extensions (pottery's default: 3).

Fence token: none (random uuid4 values).

Guarantees claimed: those of Redlock (see ``backends.redlock``). Known to break it: the same
faults as Redlock (a holder paused past the TTL, a forward wall-clock jump on nodes, a node
restarted without persistence), and pottery-specific: ``extend`` does not check the elapsed
time against the validity, and Redis errors during acquire are logged and counted as a refusal.

Outcomes: pottery answers acquire with True/False (errors on nodes are swallowed), so a False
is recorded ``fail``. A refused release/extend is ``NotOwner`` when every master answered and
unknown when some master raised an error (pottery does not say which ones had our token).

pottery is imported lazily: importing it patches ``json.dumps`` process-wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from .base import (
    Backend,
    Endpoint,
    Expiry,
    Lease,
    LockClient,
    LockFailed,
    NotAcquired,
    NotOwner,
    ServerNeed,
)
from .option_values import Option
from .redlock import DEFAULT_PERSISTENCE, PERSISTENCE, OutcomeUnknown


def master(ep: Endpoint, timeout_ms: int) -> redis.Redis:
    t = timeout_ms / 1000
    return redis.Redis(
        host=ep.host, port=ep.port, socket_timeout=t, socket_connect_timeout=t, retry=None
    )


class PotteryClient(LockClient):
    def __init__(self, endpoints: list[Endpoint], node_timeout_ms: int, extensions: int) -> None:
        from pottery import Redlock  # noqa: F401 - fail early, in the worker, if missing

        self.masters = [master(ep, node_timeout_ms) for ep in endpoints]
        self.extensions = extensions

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        from pottery import Redlock

        lock = Redlock(
            key=key,
            masters=self.masters,
            auto_release_time=ttl_ms / 1000,
            num_extensions=self.extensions,
        )
        if wait_ms > 0:
            held = lock.acquire(blocking=True, timeout=wait_ms / 1000)
        else:
            held = lock.acquire(blocking=False)
        if not held:
            raise NotAcquired(f"{key}: pottery Redlock not acquired within {wait_ms} ms")
        # pottery keeps the owner token in a private slot; it is the lock's identity.
        return Lease(key, lock._uuid, None, data=lock)

    def release(self, lease: Lease) -> None:
        from pottery import ReleaseUnlockedLock

        try:
            lease.data.release()
        except ReleaseUnlockedLock as e:
            raise _refusal(e, "release") from e

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        from pottery import ExtendUnlockedLock, TooManyExtensions

        lock = lease.data
        lock.auto_release_time = ttl_ms / 1000
        try:
            lock.extend()
        except TooManyExtensions as e:
            # Refused before anything was sent: certainly no effect.
            raise LockFailed(f"pottery refuses more than {self.extensions} extensions") from e
        except ExtendUnlockedLock as e:
            raise _refusal(e, "extend") from e

    def close(self) -> None:
        for m in self.masters:
            m.close()


def _refusal(e: Any, what: str) -> Exception:
    """NotOwner when every master answered; else the outcome is unknown."""
    errors = list(getattr(e, "redis_errors", None) or [])
    if not errors:
        return NotOwner(f"not owner: pottery could not {what} on a majority of masters")
    return OutcomeUnknown(f"pottery {what} refused with {len(errors)} master error(s): {errors[0]}")


class PotteryRedlockBackend(Backend):
    name = "pottery"
    cooperative = True  # redis-py: sockets and select in Python
    description = "pottery's Redlock on N independent Redis masters (adapter)"
    fence = "none"
    options = {
        "nodes": Option(5, "independent Redis masters", lo=1, hi=15),
        "node_timeout_ms": Option(50, "per-node timeout", lo=1, hi=60_000),
        "num_extensions": Option(3, "renewals the library allows", lo=0, hi=10**9),
        "persistence": Option(DEFAULT_PERSISTENCE, "server fsync policy", choices=PERSISTENCE),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.nodes: int = self.values["nodes"]
        self.node_timeout_ms: int = self.values["node_timeout_ms"]
        self.extensions: int = self.values["num_extensions"]
        self.persistence: str = self.values["persistence"]

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        return ServerNeed("redis", self.nodes, {"persistence": self.persistence})

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return PotteryClient(endpoints, self.node_timeout_ms, self.extensions)
