"""A maintainer's Python plug-in: the harness adapter for their lock library (here redis-py's
``Lock``, standing in for "mylock"), registered in their pyproject.toml:

    [project.entry-points."harness.backends"]
    mylock = "mylock_harness:MyLockBackend"
"""

from __future__ import annotations

import redis

from backends.base import (
    Backend,
    ClientParams,
    Endpoint,
    Expiry,
    Lease,
    LockClient,
    NotAcquired,
    NotOwner,
    ServerNeed,
)


class MyLockClient(LockClient):
    def __init__(self, ep: Endpoint, params: ClientParams) -> None:
        # The TTL and wait arrive at connect: a library that wants them up front has them.
        self.ttl_ms = params.ttl_ms or 3000
        self.r = redis.Redis(host=ep.host, port=ep.port, socket_timeout=1, retry=None, protocol=2)

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        lock = self.r.lock(f"mylock:{key}", timeout=ttl_ms / 1000, sleep=0.005)
        if not lock.acquire(blocking=wait_ms > 0, blocking_timeout=wait_ms / 1000):
            raise NotAcquired(key)  # the server said no: certain
        return Lease(key, str(lock.local.token), None, data=lock)

    def release(self, lease: Lease) -> None:
        try:
            lease.data.release()
        except redis.exceptions.LockNotOwnedError as e:  # the server said: not yours
            raise NotOwner(str(e)) from e  # any other error stays unknown (info)

    def close(self) -> None:
        self.r.close()


class MyLockBackend(Backend):
    name = "mylock"
    description = "mylock (redis-py Lock) on one Redis"
    renews = False

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        return ServerNeed("redis", 1)

    def connect(self, endpoints: list[Endpoint], client_id: int, params: ClientParams):
        return MyLockClient(endpoints[0], params)

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return self.connect(endpoints, client_id, ClientParams())
