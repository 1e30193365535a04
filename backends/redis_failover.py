"""Redis with a replica and Sentinel failover: the single-instance ``SET NX PX`` lock on whichever
node the sentinels say is the master.

Deployment: a master (n1), one asynchronous replica (n2), three sentinels (sentinel1..3, quorum
2) watching them. Clients find the master through the sentinels (redis-py's
``redis.sentinel.Sentinel``), as the "one Redis with a replica" setup does. The kill nemesis
on the master makes the sentinels promote the replica (down after ``down_after_ms``, then a
leader sentinel fails over); clients then reach the new master.

Algorithm: ``backends/redis.py``'s (one Lua script: ``SET NX PX`` and ``INCR fence`` atomically;
compare-and-delete release; compare-and-pexpire renew). With ``wait_replicas=1`` every attempt
is followed by ``WAIT 1 wait_timeout_ms`` on the same connection (one pipeline); a grant that
fewer replicas acknowledged in time is withdrawn (compare-and-delete) and the acquire fails.

Fence token: the ``INCR`` counter, replicated like the lock.

Guarantees claimed: mutual exclusion while the master keeps running; none across a failover.

Known to break it: a kill of the master whose process is back (restarted by its supervisor,
with its append-only file) while the sentinels fail over. They promote the replica (``REPLICAOF
NO ONE``) but announce the switch about a second later; a client that reconnects in between is
sent to the restarted old master, and redis-py keeps that connection after the switch, while
clients that connect later get the promoted replica: two masters grant the same key, from the
same fence counter, until the sentinels demote the old master some seconds later (two clients
at once, equal fences). With ``wait_replicas=1`` the old master has no replica left after the
switch, so its grants are withdrawn. Replication is asynchronous, so a grant acknowledged but not
yet sent to the replica is lost at the failover too (redis.io, "Why failover-based
implementations are not enough"); on one machine the kernel still delivers what a killed
process had written, so that window is microseconds wide. ``repl_lag_ms=N`` opens it: the
replica's replication connection goes through its own proxy (``harness/runtime/repl_lag.py``)
that holds the master's stream N ms and drops what it holds when the master dies, so the
promoted replica lacks the last N ms of grants and a second client gets one of them (a lower
fence too). WAIT 1 (with ``wait_timeout_ms`` above the lag) closes that window, but not a
replica that acknowledged, then restarted without the grant (no persistence) and was promoted
before it resynced. README, "What it finds", has the measured rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from .base import MAX_MS, Backend, Endpoint, Expiry, Lease, LockClient, LockFailed, ServerNeed
from .option_values import Option
from .redis import ACQUIRE, DEFAULT_PERSISTENCE, PERSISTENCE, RELEASE, RENEW, RedisClient

MASTER = "lockharness"  # the master's name at the sentinels (harness/runtime/sentinel.py)
SENTINELS = 3
LAGGED_FAILOVER_TIMEOUT_MS = 600_000


def certain(e: BaseException) -> bool:
    """Nothing reached a Redis node: no sentinel knew a master, or the connection to it was
    never made (redis-py words every such failure "... connecting to ...")."""
    if isinstance(e, MasterNotFoundError):
        return True
    return isinstance(e, redis.ConnectionError | redis.TimeoutError) and "connecting to" in str(e)


class FailoverClient(RedisClient):
    def __init__(
        self, sentinels: list[Endpoint], timeout_ms: int, wait_replicas: int, wait_ms: int
    ) -> None:
        t = timeout_ms / 1000
        # As redis.py's connect(): no retries, RESP2, no handshake round trip.
        kw: dict[str, Any] = {
            "socket_timeout": t,
            "socket_connect_timeout": t,
            "retry": None,
            "protocol": 2,
        }
        self.sentinel = Sentinel([(e.host, e.port) for e in sentinels], sentinel_kwargs=kw, **kw)
        self.r = self.sentinel.master_for(MASTER, driver_info=None, **kw)
        self._acquire = self.r.register_script(ACQUIRE)
        self._release = self.r.register_script(RELEASE)
        self._renew = self.r.register_script(RENEW)
        self.wait_replicas = wait_replicas
        self.wait_ms = wait_ms

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        return self._certain(lambda: RedisClient.acquire(self, key, ttl_ms, wait_ms))

    def release(self, lease: Lease) -> None:
        self._certain(lambda: RedisClient.release(self, lease))

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        self._certain(lambda: RedisClient.renew(self, lease, ttl_ms))

    @staticmethod
    def _certain(call: Any) -> Any:
        try:
            return call()
        except redis.RedisError as e:
            if certain(e):
                raise LockFailed(f"no master reached: {e}") from e
            raise

    def _try(self, key: str, token: str, ttl_ms: int) -> Any:
        if not self.wait_replicas:
            return super()._try(key, token, ttl_ms)
        # WAIT counts the replicas that have this connection's writes: one pipeline, one
        # connection.
        pipe = self.r.pipeline(transaction=False)
        self._acquire(keys=[f"lock:{key}", f"fence:{key}"], args=[token, ttl_ms], client=pipe)
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms)
        fence, acked = pipe.execute()
        if fence is None or int(acked) >= self.wait_replicas:
            return fence
        # Withdrawn: an error here leaves the grant's fate unknown (not LockFailed).
        self._release(keys=[f"lock:{key}"], args=[token])
        raise LockFailed(
            f"granted, but {acked} of {self.wait_replicas} replicas acknowledged it within "
            f"{self.wait_ms} ms: withdrawn"
        )

    def close(self) -> None:
        self.r.close()
        for s in self.sentinel.sentinels:
            s.close()


class RedisFailoverBackend(Backend):
    name = "redis-failover"
    cooperative = True  # redis-py: sockets and select in Python
    description = (
        "Redis master + replica, 3 Sentinels: SET NX PX on the master clients find through "
        "Sentinel (optionally WAIT for the replica)"
    )
    fence = "INCR counter, atomic with the grant, replicated asynchronously"
    fenced = True
    options = {
        "timeout_ms": Option(1000, "socket timeout", lo=1, hi=MAX_MS),
        "persistence": Option(DEFAULT_PERSISTENCE, "server fsync policy", choices=PERSISTENCE),
        "wait_replicas": Option(0, "WAIT for this many replicas after a grant", lo=0, hi=1),
        "wait_timeout_ms": Option(100, "how long WAIT waits", lo=1, hi=MAX_MS),
        "down_after_ms": Option(1000, "sentinels: master down after", lo=100, hi=60_000),
        "failover_timeout_ms": Option(2000, "sentinels: failover timeout", lo=100, hi=600_000),
        "repl_lag_ms": Option(
            0,
            "the replica gets the master's stream this late (its own proxy; the sentinels' "
            "failover timeout is then 600 s, so they leave its link alone)",
            lo=0,
            hi=60_000,
        ),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.timeout_ms: int = self.values["timeout_ms"]
        self.wait_replicas: int = self.values["wait_replicas"]
        self.wait_ms: int = self.values["wait_timeout_ms"]
        if self.wait_replicas and self.wait_ms >= self.timeout_ms:
            raise ValueError(
                f"option wait_timeout_ms={self.wait_ms} must be below timeout_ms="
                f"{self.timeout_ms} (the socket would time out before WAIT answers)"
            )
        lag = self.values["repl_lag_ms"]
        if self.wait_replicas and self.wait_ms <= lag:
            raise ValueError(
                f"option wait_timeout_ms={self.wait_ms} must exceed repl_lag_ms={lag} (the "
                "replica's acknowledgement comes after the lag: WAIT would withdraw every grant)"
            )

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        lag = self.values["repl_lag_ms"]
        failover_timeout = self.values["failover_timeout_ms"]
        if lag:
            # The replica reports the proxy as its master; a sentinel "fixes" a replica of
            # another master (REPLICAOF the real one) once it has seen it so for a failover
            # timeout, which would end the lag before the run: keep that past any run. The
            # failover itself does not wait on it (down after, then an election).
            failover_timeout = max(failover_timeout, LAGGED_FAILOVER_TIMEOUT_MS)
        front = ServerNeed(
            "redis-sentinel",
            SENTINELS,
            {
                "down_after_ms": self.values["down_after_ms"],
                "failover_timeout_ms": failover_timeout,
            },
        )
        return ServerNeed(
            "redis",
            2,
            {"persistence": self.values["persistence"], "replicated": True, "repl_lag_ms": lag},
            front=front,
            front_role="sentinel",
        )

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return FailoverClient(endpoints, self.timeout_ms, self.wait_replicas, self.wait_ms)
