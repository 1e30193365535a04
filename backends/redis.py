"""Single-node Redis lock: ``SET key token NX PX ttl``.

Algorithm: acquire runs one Lua script that does ``SET lock:<key> <token> NX PX <ttl>`` and, when
it succeeded, ``INCR fence:<key>`` in the same atomic step, so the fence token is tied to the
grant; it polls every few ms until the wait timeout. A grant whose reply took longer than the
TTL less Redlock's drift allowance is void (the lease may have run out before the client learnt
of it): it is deleted if still there and the acquire goes on polling. Release is a Lua
compare-and-delete, renew a compare-and-pexpire, so a client can never remove or extend a lock
it no longer owns.

Fence token: the per-key ``INCR`` counter, strictly increasing per grant while the server keeps
its data.

Guarantees claimed: mutual exclusion while the single server runs, keeps its data and its clock
runs at the right pace, and while holders finish within the TTL.

Known to break it: a holder paused past its TTL (the lock expires under it), a forward jump of
the server's wall clock (Redis stores expiries as absolute wall-clock ms), and a restart without
persistence (the lock and the fence counter are forgotten).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis

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
    drift_ms,
)
from .option_values import Option

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
"""
# The redis server kind's persistence choices (option ``persistence``); only ``always`` keeps
# every acknowledged write across a kill, the others are reported as non-durable settings.
PERSISTENCE = ("off", "everysec", "always")
DEFAULT_PERSISTENCE = "always"


def persistence_need(backend: Backend, nodes: int = 1) -> ServerNeed:
    """The redis servers a backend with a ``persistence`` option needs."""
    persistence = backend.values["persistence"]
    return ServerNeed("redis", nodes, {"persistence": persistence})


RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def connect(ep: Endpoint, timeout_ms: int) -> redis.Redis:
    t = timeout_ms / 1000
    # RESP2 and no CLIENT SETINFO: no handshake round trip, so a request to a paused node is
    # sent (an unknown outcome) rather than stuck before sending.
    return redis.Redis(
        host=ep.host,
        port=ep.port,
        socket_timeout=t,
        socket_connect_timeout=t,
        retry=None,
        protocol=2,
        driver_info=None,
    )


def poll_pause(attempt: int) -> float:
    """Back-off between polls of a taken lock: short at first, capped, jittered."""
    return min(0.002 * (1 + attempt), 0.02) * random.uniform(0.5, 1.5)


class RedisClient(LockClient):
    def __init__(self, ep: Endpoint, timeout_ms: int) -> None:
        self.r = connect(ep, timeout_ms)
        self._acquire = self.r.register_script(ACQUIRE)
        self._release = self.r.register_script(RELEASE)
        self._renew = self.r.register_script(RENEW)

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_ms / 1000
        attempt = 0
        late = 0
        while True:
            start = time.monotonic()
            fence = self._try(key, token, ttl_ms)
            if fence is not None:
                # The grant counts from before it was asked for: a reply held up past the TTL
                # (a server stopped after granting, before answering) is a lease that may have
                # run out already, and another client may hold the lock: void, not a hold.
                validity = ttl_ms - (time.monotonic() - start) * 1000 - drift_ms(ttl_ms)
                if validity > 0:
                    return Lease(key, token, int(fence), validity_ms=validity)
                late += 1
                self._give_back(key, token)
            if time.monotonic() >= deadline:
                why = f", {late} grant(s) arrived after their lease ran out" if late else ""
                raise NotAcquired(f"{key} held by another client for {wait_ms} ms{why}")
            time.sleep(poll_pause(attempt))
            attempt += 1

    def _try(self, key: str, token: str, ttl_ms: int) -> Any:
        """One attempt: the fence of the grant, or None while another client holds it."""
        return self._acquire(keys=[f"lock:{key}", f"fence:{key}"], args=[token, ttl_ms])

    def _give_back(self, key: str, token: str) -> None:
        """Delete a void grant of ours if it is still there; it lapses by its TTL otherwise."""
        try:
            self._release(keys=[f"lock:{key}"], args=[token])
        except redis.RedisError:
            pass

    def release(self, lease: Lease) -> None:
        if not self._release(keys=[f"lock:{lease.key}"], args=[lease.token]):
            raise NotOwner("not owner: the lock expired or belongs to another client")

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        if not self._renew(keys=[f"lock:{lease.key}"], args=[lease.token, ttl_ms]):
            raise NotOwner("not owner: the lock expired or belongs to another client")

    def close(self) -> None:
        self.r.close()

    def warm(self) -> None:
        warm(self.r)


def warm(r: redis.Redis) -> None:
    """Open one pooled connection of ``r`` now (``LockClient.warm``): redis-py connects at a
    client's first command. A PING, which every redis-py version takes (the pool's
    ``get_connection`` wants a command name before 5.3)."""
    r.ping()


class RedisBackend(Backend):
    own_store = "redis"  # the lock-set store its cluster holds
    name = "redis"
    cooperative = True  # redis-py: sockets and select in Python
    description = "single Redis node: SET NX PX + Lua compare-and-delete, fence by INCR"
    fence = "INCR counter, atomic with the grant"
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
        return RedisClient(endpoints[0], self.timeout_ms)
