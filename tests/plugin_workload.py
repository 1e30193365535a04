"""A workload written as a third party would: a counter in a data store, incremented under the
lock. It uses every hook of the interface: an extra server (the store, a redis-server), shared
state made before the fork, a final read after the faults are healed, its own checker in its
checker map beside the lock's, and its own progress count. Every op, the lock's acquire and
release included, goes through ``ctx.call``, which records it as the checkers expect.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import redis

from backends.base import Lease, ServerNeed
from backends.option_values import Option
from checkers import CheckerMap, History, lock_checkers
from workloads.base import ClientContext, FinalContext, Progress, SetupContext, Workload


def _store(endpoints) -> redis.Redis:
    ep = endpoints[0]
    return redis.Redis(host=ep.host, port=ep.port, socket_timeout=1.0, socket_connect_timeout=1.0)


def _increment(store: redis.Redis) -> int:
    n = int(store.get("counter") or 0) + 1
    store.set("counter", n)
    return n


def _fence(lease: Lease) -> int | None:
    return lease.fence


def counter_check(h: History) -> dict[str, Any]:
    """Every ok increment is in the final read, and nothing else (lost updates are invalid)."""
    incs = sum(1 for o in h.ops if o.f == "increment" and o.type == "ok")
    unknown = sum(1 for o in h.ops if o.f == "increment" and o.type == "info")
    reads = [o.value for o in h.ops if o.f == "final-read" and o.type == "ok"]
    if not reads:
        return {"valid": "unknown", "summary": "no final read", "increments": incs}
    ok = incs <= reads[-1] <= incs + unknown
    return {
        "valid": ok,
        "summary": f"{incs} ok increments, final read {reads[-1]}",
        "increments": incs,
        "final": reads[-1],
    }


class CounterWorkload(Workload):
    name = "counter"
    description = "increment a counter in a data store under the lock; read it at the end"
    options = {
        "ttl_ms": Option(3000, "lock TTL, ms", lo=1),
        "slots": Option(4, "shared", lo=1),
        "persistence": Option("always", "the store's", choices=("off", "everysec", "always")),
    }
    progress = Progress("increments", "ok", "increment")

    def servers(self) -> dict[str, ServerNeed]:
        return {"store": ServerNeed("redis", 1, {"persistence": self.opts["persistence"]})}

    def shared_state(self, ctx: SetupContext) -> Any:
        _store(ctx.servers["store"]).set("counter", 0)  # the store is up before the fork
        return ctx.mp.Array("q", self.opts["slots"], lock=False)

    def run_client(self, ctx: ClientContext) -> None:
        store, lock = _store(ctx.servers["store"]), ctx.new_client()
        ctx.shared[ctx.index % self.opts["slots"]] = 1  # every worker sees the same array
        try:
            for _ in ctx.turns():  # bounded by --ops and the time limit, paced by --rate
                # fail: another client holds it; info: lock.close() ran, the process retired
                got = ctx.call(
                    "acquire",
                    "c",
                    partial(lock.acquire, "c", self.opts["ttl_ms"], 500),
                    ok_value=_fence,
                    close=lock.close,
                )
                if got.unknown:
                    lock = ctx.new_client()
                lease = got.result
                if lease is None:
                    continue
                inc = ctx.call(
                    "increment",
                    "c",
                    partial(_increment, store),
                    ok_value=lambda n: n,
                    close=store.close,
                    retire=False,  # a holder retires only after it has invoked its release
                )
                freed = ctx.call(
                    "release",
                    "c",
                    partial(lock.release, lease),
                    value=lease.fence,
                    close=lock.close,
                )
                if freed.unknown:  # closed and retired
                    lock = ctx.new_client()
                elif inc.unknown:
                    ctx.retire()
        finally:
            store.close()
            lock.close()

    def final(self, ctx: FinalContext) -> None:
        store = _store(ctx.servers["store"])
        ctx.call("final-read", "c", lambda: int(store.get("counter") or 0), ok_value=lambda n: n)
        # the workers' marks in the shared array, which the test reads
        ctx.call("slots-seen", "c", lambda: sum(ctx.shared), ok_value=lambda n: n)

    def checkers(self) -> CheckerMap:
        return {"counter": counter_check, **lock_checkers()}

    def lease_ms(self) -> float:
        return float(self.opts["ttl_ms"])
