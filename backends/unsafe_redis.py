"""A deliberately broken Redis lock, to prove the checkers catch violations.

Algorithm (wrong on purpose): check-then-act. ``GET`` the lock key and, when it is empty,
``SET`` it without ``NX``; two clients that both saw it empty both believe they hold it. Release
deletes the key without checking the owner. Never use this for anything but testing a checker.

Fence token: ``INCR`` after the ``SET``, not atomic with it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from .base import MAX_MS, Backend, Endpoint, Expiry, Lease, LockClient, NotAcquired, ServerNeed
from .option_values import Option
from .redis import DEFAULT_PERSISTENCE, PERSISTENCE, connect, persistence_need, poll_pause, warm


class UnsafeRedisClient(LockClient):
    def __init__(self, ep: Endpoint, timeout_ms: int) -> None:
        self.r = connect(ep, timeout_ms)

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_ms / 1000
        attempt = 0
        while True:
            if self.r.get(f"lock:{key}") is None:
                self.r.set(f"lock:{key}", token, px=ttl_ms)  # the race: no NX
                return Lease(key, token, int(self.r.incr(f"fence:{key}")), validity_ms=ttl_ms)
            if time.monotonic() >= deadline:
                raise NotAcquired(f"{key} held by another client for {wait_ms} ms")
            time.sleep(poll_pause(attempt))
            attempt += 1

    def release(self, lease: Lease) -> None:
        self.r.delete(f"lock:{lease.key}")  # no owner check: may free someone else's lock

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        self.r.pexpire(f"lock:{lease.key}", ttl_ms)

    def close(self) -> None:
        self.r.close()

    def warm(self) -> None:
        warm(self.r)


class UnsafeRedisBackend(Backend):
    own_store = "redis"  # the lock-set store its cluster holds
    name = "unsafe-redis"
    cooperative = True  # redis-py: sockets and select in Python
    description = "BROKEN on purpose: GET-then-SET without NX, release without owner check"
    fence = "INCR counter, not atomic with the grant"
    fenced = True
    options = {
        "timeout_ms": Option(1000, "socket timeout", lo=1, hi=MAX_MS),
        "persistence": Option(DEFAULT_PERSISTENCE, "server fsync policy", choices=PERSISTENCE),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.need = persistence_need(self)
        # parsed here, before any server starts, not in the worker
        self.timeout_ms: int = self.values["timeout_ms"]

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        return self.need

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return UnsafeRedisClient(endpoints[0], self.timeout_ms)
