"""Adapter for python-redis-lock's ``redis_lock.Lock`` (python-redis-lock 4), on one Redis node.

Algorithm: ``SET lock:<key> <random id> NX EX <expire>``; a waiter blocks in
``BLPOP lock-signal:<key>`` and a release (Lua compare-and-delete) pushes one signal to wake a
waiter. ``extend`` is a Lua compare-and-``EXPIRE``. With ``auto_renewal=true`` a daemon thread
extends the lock every 2/3 of ``expire`` until release.

Units: the library works in whole seconds. The TTL is rounded up to whole seconds (a 0 would
mean "never expires"). Waits are blocking acquires of 1 s each while at least a second of
``wait_ms`` is left (the library's timeout is whole seconds and may not exceed ``expire``), then
non-blocking attempts every 10 ms; ``wait_ms=0`` is one non-blocking attempt. Inside one
blocking acquire the library loops while releases keep waking it and others win the race, so
under heavy contention a wait can overrun.

Fence token: none (random ids).

Guarantees claimed: mutual exclusion on one node while it keeps its data and its clock, and
while the holder finishes (or its renewal thread keeps up) within ``expire``. Known to break it:
a holder paused past ``expire`` (a paused process also pauses its renewal thread), a forward
wall-clock jump on the server, a restart without persistence; an expiry does not signal, so
waiters only notice it when their BLPOP times out (liveness, not safety). A renewal thread that
hits an error dies silently; the holder finds out at release (``NotOwner``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import redis

from .base import Backend, Endpoint, Expiry, Lease, LockClient, NotAcquired, NotOwner, ServerNeed
from .option_values import Option
from .redis import warm
from .redlock import DEFAULT_PERSISTENCE, PERSISTENCE

BLOCK_S = 1  # each blocking acquire waits at most this long (the library's unit is seconds)
POLL_S = 0.01  # below one second of wait left, poll with non-blocking acquires
MAX_ATTEMPTS = 100_000  # a bound on the wait loop besides wait_ms

# The library logs every failed non-blocking attempt as a warning; keep workers' stderr quiet.
logging.getLogger("redis_lock").addHandler(logging.NullHandler())


def expire_s(ttl_ms: int) -> int:
    return max(1, math.ceil(ttl_ms / 1000))


class PythonRedisLockClient(LockClient):
    def __init__(self, ep: Endpoint, timeout_ms: int, auto_renewal: bool) -> None:
        # The socket timeout must outlast a blocking BLPOP of BLOCK_S seconds.
        t = timeout_ms / 1000 + BLOCK_S
        self.r = redis.Redis(
            host=ep.host, port=ep.port, socket_timeout=t, socket_connect_timeout=t, retry=None
        )
        self.auto_renewal = auto_renewal

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        import redis_lock

        lock = redis_lock.Lock(self.r, key, expire=expire_s(ttl_ms), auto_renewal=self.auto_renewal)
        deadline = time.monotonic() + wait_ms / 1000
        held = False
        for _ in range(MAX_ATTEMPTS):
            held = lock.acquire(blocking=False)
            left = deadline - time.monotonic()
            if held or left <= 0:
                break
            if left >= BLOCK_S:
                held = lock.acquire(blocking=True, timeout=BLOCK_S)
                if held:
                    break
            else:  # less than the library's whole second left: poll
                time.sleep(min(left, POLL_S))
        if not held:
            raise NotAcquired(f"{key}: python-redis-lock not acquired within {wait_ms} ms")
        return Lease(key, lock.id, None, validity_ms=expire_s(ttl_ms) * 1000, data=lock)

    def release(self, lease: Lease) -> None:
        import redis_lock

        try:
            lease.data.release()
        except redis_lock.NotAcquired as e:
            raise NotOwner(f"not owner: {e}") from e

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        import redis_lock

        try:
            lease.data.extend(expire=expire_s(ttl_ms))
        except redis_lock.NotAcquired as e:
            raise NotOwner(f"not owner: {e}") from e
        lease.validity_ms = expire_s(ttl_ms) * 1000

    def close(self) -> None:
        self.r.close()

    def warm(self) -> None:
        warm(self.r)


class PythonRedisLockBackend(Backend):
    own_store = "redis"  # the lock-set store its cluster holds
    name = "python-redis-lock"
    cooperative = True  # redis-py: sockets and select in Python
    description = "python-redis-lock's redis_lock.Lock on one Redis node (adapter)"
    fence = "none"
    options = {
        "auto_renewal": Option(False, "the library's renewal thread"),
        "timeout_ms": Option(1000, "socket timeout", lo=1, hi=60_000),
        "persistence": Option(DEFAULT_PERSISTENCE, "server fsync policy", choices=PERSISTENCE),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.auto_renewal: bool = self.values["auto_renewal"]
        self.timeout_ms: int = self.values["timeout_ms"]
        self.persistence: str = self.values["persistence"]

    def expiry(self) -> Expiry:
        # auto_renewal extends the lease from a thread of its own, where the history cannot see
        return "hidden" if self.auto_renewal else "ttl"

    def servers(self) -> ServerNeed:
        return ServerNeed("redis", 1, {"persistence": self.persistence})

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return PythonRedisLockClient(endpoints[0], self.timeout_ms, self.auto_renewal)
