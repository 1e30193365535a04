"""Redlock, written from the algorithm on redis.io's "Distributed Locks with Redis" page.

Algorithm: N independent Redis masters (option ``nodes``, default 5; quorum = N // 2 + 1).
To acquire, take the time, then try ``SET lock:<key> <random token> NX PX <ttl>`` on every node
in turn, each with a short socket timeout (``node_timeout_ms``, default 50 ms, small next to the
TTL, so a dead or stopped node costs little). The lock is held when a quorum granted it and
time is left: validity = ttl - elapsed - drift, with drift = ttl * 0.01 + 2 ms (the allowance
for clock drift between nodes used by the reference implementations and pottery). Otherwise
unlock every node (even those that said no) and retry after a random delay in
[0, ``retry_delay_ms``) until ``wait_ms`` is used up. Release runs a Lua compare-and-delete on
every node; renew runs a Lua compare-and-pexpire on every node and counts only when a quorum
extended within the new validity time.

Fence token: none. Tokens are random, so ``Lease.fence`` is None and the fencing checker has
nothing to order.

Guarantees claimed (by the page): mutual exclusion as long as a quorum of nodes keeps the key
for the TTL, clocks on the nodes advance at about the same rate, and the holder finishes within
the validity time.

Known to break it: a holder paused past its validity (nothing fences it off, Kleppmann's
critique); a forward jump of a node's wall clock (Redis stores expiries as absolute wall-clock
ms, so the key vanishes early on that node); a node killed and restarted without persistence
while holding a key (``persistence=off``; ``everysec`` can still lose the last second) unless it
stays down longer than the TTL before rejoining (``delayed_restart=true``, which the kill
nemesis reads through ``min_down_ms``); partitions that, combined with one of the above, let two clients each see a quorum.

Outcomes. Per node, a command either got an answer, was certainly never sent (the connection
could not be made: ``down``), or was sent without an answer (``unknown``: it may still run, e.g.
when a stopped node resumes). An acquire that failed everywhere it was certain is ``fail``; one
that may have left our token on a quorum of nodes is unknown. A release is ``ok`` when a quorum
deleted our token, ``NotOwner`` when even counting every silent node no quorum can have held it,
and unknown in between.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import (
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
from .redis import DEFAULT_PERSISTENCE, PERSISTENCE, RELEASE
from .redis import RENEW as EXTEND  # the same compare-and-delete / compare-and-pexpire

MAX_ATTEMPTS = 100_000  # a bound on the retry loop besides wait_ms

# What one command on one node came to.
DONE, DOWN, UNKNOWN = "done", "down", "unknown"


class OutcomeUnknown(Exception):
    """Commands were sent that got no answer: the operation may or may not have taken effect."""


# -- option parsing, shared with the other Redis library adapters ----------------------------


def quorum(n: int) -> int:
    return n // 2 + 1


# -- one node ---------------------------------------------------------------------------------


class NodeLink:
    """One connection to one Redis master, telling apart 'never sent' from 'no answer'."""

    def __init__(self, ep: Endpoint, timeout_ms: int) -> None:
        t = timeout_ms / 1000
        self.name = ep.name
        self.conn = redis.Connection(
            host=ep.host,
            port=ep.port,
            socket_timeout=t,
            socket_connect_timeout=t,
            retry=None,  # no hidden retries: one try per node, as the algorithm says
            # No handshake round trip on connect (redis-py 8 sends HELLO 3 and CLIENT SETINFO),
            # so a connection that opened means our command is the first thing sent.
            protocol=2,
            driver_info=None,
        )

    def _ready(self) -> bool:
        """Connect if needed; False when the node cannot be reached (nothing was sent)."""
        try:
            self.conn.connect()
        except (RedisError, OSError):
            self.conn.disconnect()
            return False
        try:
            # An idle connection with something to read is stale (EOF: the node restarted).
            stale = self.conn.can_read(0)
        except (RedisError, OSError):
            stale = True
        if not stale:
            return True
        self.conn.disconnect()
        try:
            self.conn.connect()
        except (RedisError, OSError):
            self.conn.disconnect()
            return False
        return True

    def call(self, *args: object) -> tuple[str, object]:
        """(DONE, reply) | (DOWN, error) | (UNKNOWN, error)."""
        if not self._ready():
            return DOWN, f"{self.name} unreachable"
        try:
            self.conn.send_command(*args)
            return DONE, self.conn.read_response()
        except ResponseError as e:  # the node answered with an error: nothing done
            return DOWN, f"{self.name}: {e}"
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            self.conn.disconnect()
            return UNKNOWN, f"{self.name}: {e}"

    def close(self) -> None:
        self.conn.disconnect()


@dataclass
class Tally:
    """Per-node outcomes of one round of commands."""

    yes: list[str]  # answered and did it
    no: list[str]  # answered and refused (key taken, token absent)
    down: list[str]  # certainly never ran
    unknown: list[str]  # may or may not have run
    errors: list[str]

    def summary(self) -> str:
        parts = [f"{len(self.yes)} yes", f"{len(self.no)} no"]
        if self.down:
            parts.append(f"{len(self.down)} down")
        if self.unknown:
            parts.append(f"{len(self.unknown)} unknown")
        return ", ".join(parts)


# -- the client -------------------------------------------------------------------------------


class RedlockClient(LockClient):
    def __init__(
        self, endpoints: list[Endpoint], node_timeout_ms: int, retry_delay_ms: int
    ) -> None:
        self.nodes = [NodeLink(ep, node_timeout_ms) for ep in endpoints]
        self.quorum = quorum(len(self.nodes))
        self.retry_delay_ms = retry_delay_ms

    def _round(self, *args: object) -> Tally:
        t = Tally([], [], [], [], [])
        for node in self.nodes:  # sequentially, as the page describes
            status, reply = node.call(*args)
            if status == DONE:
                (t.yes if reply else t.no).append(node.name)
            else:
                (t.down if status == DOWN else t.unknown).append(node.name)
                t.errors.append(str(reply))
        return t

    def _try_once(self, name: str, token: str, ttl_ms: int) -> tuple[float | None, Tally]:
        """One attempt: the validity in ms when held, else None (after unlocking all)."""
        start = time.monotonic()
        t = self._round("SET", name, token, "NX", "PX", ttl_ms)
        validity = ttl_ms - (time.monotonic() - start) * 1000 - drift_ms(ttl_ms)
        if len(t.yes) >= self.quorum and validity > 0:
            return validity, t
        cleanup = self._round("EVAL", RELEASE, 1, name, token)
        # Nodes that may still hold our token until the TTL runs out.
        maybe_left = set(t.yes + t.unknown) - set(cleanup.yes + cleanup.no)
        if len(maybe_left) >= self.quorum:
            raise OutcomeUnknown(
                f"redlock acquire of {name}: no answer from {', '.join(sorted(maybe_left))}; "
                f"a quorum may hold the lock until its TTL ({t.summary()})"
            )
        return None, t

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        name = f"lock:{key}"
        deadline = time.monotonic() + wait_ms / 1000
        last: Tally | None = None
        for _ in range(MAX_ATTEMPTS):
            token = os.urandom(20).hex()
            validity, last = self._try_once(name, token, ttl_ms)
            if validity is not None:
                return Lease(key, token, None, validity_ms=validity)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, random.uniform(0, self.retry_delay_ms / 1000)))
        detail = last.summary() if last else "no attempt"
        raise NotAcquired(
            f"{key}: no quorum of {self.quorum}/{len(self.nodes)} within {wait_ms} ms "
            f"(last attempt: {detail})"
        )

    def release(self, lease: Lease) -> None:
        t = self._round("EVAL", RELEASE, 1, f"lock:{lease.key}", lease.token)
        if len(t.yes) >= self.quorum:
            return
        if len(t.yes) + len(t.down) + len(t.unknown) < self.quorum:
            raise NotOwner(f"not owner: no quorum held our token ({t.summary()})")
        raise OutcomeUnknown(f"redlock release of {lease.key}: {t.summary()}: {t.errors[0]}")

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        start = time.monotonic()
        t = self._round("EVAL", EXTEND, 1, f"lock:{lease.key}", lease.token, ttl_ms)
        validity = ttl_ms - (time.monotonic() - start) * 1000 - drift_ms(ttl_ms)
        if len(t.yes) >= self.quorum and validity > 0:
            lease.validity_ms = validity
            return
        if len(t.yes) + len(t.down) + len(t.unknown) < self.quorum:
            raise NotOwner(f"not owner: no quorum held our token ({t.summary()})")
        why = t.errors[0] if t.errors else f"validity used up ({validity:.0f} ms)"
        raise OutcomeUnknown(f"redlock renew of {lease.key}: {t.summary()}: {why}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class RedlockBackend(Backend):
    name = "redlock"
    cooperative = True  # redis-py: sockets and select in Python
    description = "Redlock as specified on redis.io: N independent Redis masters, quorum SET NX PX"
    fence = "none"
    options = {
        "nodes": Option(5, "independent Redis masters", lo=1, hi=15),
        "node_timeout_ms": Option(50, "per-node timeout", lo=1, hi=60_000),
        "retry_delay_ms": Option(100, "pause between attempts", lo=0, hi=60_000),
        "persistence": Option(DEFAULT_PERSISTENCE, "server fsync policy", choices=PERSISTENCE),
        "delayed_restart": Option(False, "keep a killed node down longer than the TTL"),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.nodes: int = self.values["nodes"]
        self.node_timeout_ms: int = self.values["node_timeout_ms"]
        self.retry_delay_ms: int = self.values["retry_delay_ms"]
        self.persistence: str = self.values["persistence"]
        #: Keep a killed node down longer than the TTL before restarting (``min_down_ms``).
        self.delayed_restart: bool = self.values["delayed_restart"]

    def expiry(self) -> Expiry:
        return "ttl"

    def min_down_ms(self, lease_ms: float) -> float:
        return lease_ms + 500 if self.delayed_restart else 0.0

    def servers(self) -> ServerNeed:
        return ServerNeed("redis", self.nodes, {"persistence": self.persistence})

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return RedlockClient(endpoints, self.node_timeout_ms, self.retry_delay_ms)
