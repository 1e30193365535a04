"""A workload written as a third party would: a counter in a data store, incremented under the
lock. It uses every hook of the interface: an extra server (the store, a redis-server), shared
state made before the fork, a final read after the faults are healed, its own checker in its
checker map, and its own progress count.
"""

from __future__ import annotations

from typing import Any

import redis

from backends.base import LockFailed, ServerNeed
from backends.option_values import Option
from checkers import CheckerMap, History, perf
from workloads.base import ClientContext, FinalContext, Progress, SetupContext, Workload


def _store(endpoints) -> redis.Redis:
    ep = endpoints[0]
    return redis.Redis(host=ep.host, port=ep.port, socket_timeout=1.0, socket_connect_timeout=1.0)


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
        rec, store, lock = ctx.recorder, _store(ctx.servers["store"]), ctx.new_client()
        ctx.shared[ctx.index % self.opts["slots"]] = 1  # every worker sees the same array
        for _ in range(ctx.max_ops):
            if not ctx.running():
                break
            try:
                lease = lock.acquire("c", self.opts["ttl_ms"], 500)
            except LockFailed:
                continue
            rec.record(ctx.process, "invoke", "increment", "c")
            rec.flush()
            try:
                n = int(store.get("counter") or 0)
                store.set("counter", n + 1)
            except Exception as e:
                rec.record(ctx.process, "info", "increment", "c", error=str(e))
                ctx.retire()
            else:
                rec.record(ctx.process, "ok", "increment", "c", n + 1)
            rec.flush()
            try:
                lock.release(lease)
            except Exception:
                pass
        store.close()
        lock.close()

    def final(self, ctx: FinalContext) -> None:
        rec = ctx.recorder
        rec.record(ctx.process, "invoke", "final-read", "c")
        value = int(_store(ctx.servers["store"]).get("counter") or 0)
        rec.record(ctx.process, "ok", "final-read", "c", value)
        rec.record(ctx.process, "ok", "slots-seen", "c", sum(ctx.shared))

    def checkers(self) -> CheckerMap:
        return {"counter": counter_check, "perf": lambda h: perf.check(h.ops, presorted=True)}

    def lease_ms(self) -> float:
        return float(self.opts["ttl_ms"])
