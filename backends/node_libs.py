"""Node.js lock libraries from the npm registry, each a thin entry point over the process
backend (``backends/process.py``) and its adapter script under ``adapters/node/`` (installed
by setup.sh with ``npm ci`` from the committed package-lock.json).

- ``node-redlock``: the ``redlock`` package (4.2.0, the registry's latest release) on ioredis
  clients, one per redis-server (5 by default), quorum as the library counts it, its own retry
  loop (attempts derived from the run's wait), ``extend`` as renew. No fence token. Known to
  break it: as the Python ``redlock``: a holder paused past its TTL, restarts without
  persistence; a clock jump on one node of five is not a majority.
- ``node-redis-semaphore``: ``redis-semaphore``'s ``Mutex`` (5.8.0) on one redis-server: a
  ``SET NX PX`` poll every 10 ms and, by default, a background refresh every 0.8 x TTL
  (expiry ``hidden``; ``refresh=false``: ``ttl``). No fence token. Known to break it: a holder
  paused past its TTL (its refresh timer pauses with it), a forward clock jump of the server,
  a restart without persistence.

Outcomes follow the adapter protocol's rule: a library that retried internally answers
``fail`` only when every attempt was answered; see each adapter's header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import MAX_MS, Expiry, ServerNeed
from .option_values import Option
from .process import ProcessBackend
from .redis import DEFAULT_PERSISTENCE, PERSISTENCE

_COMMON: dict[str, Option | str] = {
    "persistence": Option(DEFAULT_PERSISTENCE, "server fsync policy", choices=PERSISTENCE),
    "command_timeout_ms": Option(500, "ioredis's per-command timeout", lo=1, hi=MAX_MS),
    "reply_timeout_ms": Option(
        5000, "how long an adapter reply may take (past an acquire's wait)", lo=1, hi=MAX_MS
    ),
    "connect_timeout_ms": Option(10_000, "how long an adapter connect may take", lo=1, hi=MAX_MS),
}


class NodeRedlockBackend(ProcessBackend):
    name = "node-redlock"
    description = "npm redlock 4.2.0 on ioredis: N independent Redis masters, through a process"
    fence = "none"
    script = "node/redlock.js"
    renews = True
    options: ClassVar[Mapping[str, Option | str]] = {
        "nodes": Option(5, "independent Redis masters", lo=1, hi=15),
        "retry_delay_ms": Option(200, "redlock's retryDelay", lo=1, hi=60_000),
        "retry_jitter_ms": Option(100, "redlock's retryJitter", lo=0, hi=60_000),
        "delayed_restart": Option(False, "keep a killed node down longer than the TTL"),
        **_COMMON,
    }
    SENT = ("retry_delay_ms", "retry_jitter_ms", "command_timeout_ms")

    def _need(self) -> ServerNeed:
        return ServerNeed(
            "redis", self.values["nodes"], {"persistence": self.values["persistence"]}
        )

    def _fenced(self) -> bool:
        return False

    def adapter_opts(self) -> dict[str, Any]:
        return {k: self.values[k] for k in self.SENT}

    def expiry(self) -> Expiry:
        return "ttl"

    def min_down_ms(self, lease_ms: float) -> float:
        return lease_ms + 500 if self.values["delayed_restart"] else 0.0


class NodeRedisSemaphoreBackend(ProcessBackend):
    name = "node-redis-semaphore"
    description = "npm redis-semaphore 5.8.0 Mutex on ioredis: one Redis, background refresh"
    fence = "none"
    script = "node/redis-semaphore.js"
    renews = False
    own_store = "redis"
    options: ClassVar[Mapping[str, Option | str]] = {
        "refresh": Option(True, "the library's background refresh (every 0.8 x TTL)"),
        "retry_interval_ms": Option(10, "the Mutex's retryInterval", lo=1, hi=60_000),
        **_COMMON,
    }
    SENT = ("refresh", "retry_interval_ms", "command_timeout_ms")

    def _need(self) -> ServerNeed:
        return ServerNeed("redis", 1, {"persistence": self.values["persistence"]})

    def _fenced(self) -> bool:
        return False

    def adapter_opts(self) -> dict[str, Any]:
        return {k: self.values[k] for k in self.SENT}

    def expiry(self) -> Expiry:
        return "hidden" if self.values["refresh"] else "ttl"
