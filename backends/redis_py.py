"""Adapter for redis-py's own ``redis.lock.Lock`` (the shape of a third-party adapter).

Algorithm: redis-py's Lock: ``SET NX PX`` with a random token, polling every ``sleep`` seconds
up to ``blocking_timeout``; release and extend by Lua scripts that check the token.

Fence token: none; redis-py's Lock has no fencing.

Guarantees claimed: as the single-node ``redis`` backend. Known to break it: the same faults (a
paused holder past its TTL, a wall-clock jump on the server, a restart without persistence).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.exceptions import LockNotOwnedError

from .base import (
    MAX_MS,
    Backend,
    Endpoint,
    Expiry,
    Lease,
    LockClient,
    NotAcquired,
    NotOwner,
    ServerNeed,
)
from .option_values import Option
from .redis import DEFAULT_PERSISTENCE, PERSISTENCE, connect, persistence_need, warm


class RedisPyClient(LockClient):
    def __init__(self, ep: Endpoint, timeout_ms: int) -> None:
        self.r = connect(ep, timeout_ms)

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        lock = redis.lock.Lock(
            self.r,
            f"lock:{key}",
            timeout=ttl_ms / 1000,
            sleep=0.002,
            blocking_timeout=wait_ms / 1000,
            thread_local=False,
        )
        if not lock.acquire():
            raise NotAcquired(f"{key} held by another client for {wait_ms} ms")
        return Lease(key, lock.local.token.decode(), None, validity_ms=ttl_ms, data=lock)

    def release(self, lease: Lease) -> None:
        try:
            lease.data.release()
        except LockNotOwnedError as e:
            raise NotOwner(f"not owner: {e}") from e

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        try:
            lease.data.extend(ttl_ms / 1000, replace_ttl=True)
        except LockNotOwnedError as e:
            raise NotOwner(f"not owner: {e}") from e

    def close(self) -> None:
        self.r.close()

    def warm(self) -> None:
        warm(self.r)


class RedisPyBackend(Backend):
    own_store = "redis"  # the lock-set store its cluster holds
    name = "redis-py"
    cooperative = True  # redis-py: sockets and select in Python
    description = "redis-py's redis.lock.Lock on one Redis node (adapter)"
    fence = "none"
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
        return RedisPyClient(endpoints[0], self.timeout_ms)
