"""The lock-set workload: lost updates on a real store (Jepsen's ``lock-set``, made real).

Each add picks a fresh unique integer, takes the lock, reads the key's set from the store, waits
(the critical section, ``hold_ms``), writes the set back with the element added, and releases.
Two clients that both believe they hold the lock both read the old set, and the second write
drops the first one's element: a lost update, found by the set checker against each key's final
read, taken once every fault is healed.

History: the lock's own ``acquire``/``release`` ops (so the mutex and fencing checkers run) and
Jepsen's ``add`` (value: the element) and ``read`` (value: the elements) ops. An add is invoked
right before the store write, after the read and the wait, so the fencing checker sees whether
the hold was already broken when the write went out; a refused write (``StaleWrite``,
``NotHeld``) is a ``fail`` add, one whose outcome is unknown an ``info`` add. A failed read is a
``fail`` add too: nothing was written.

Where the set lives (``store``): ``auto`` puts it on the lock's own cluster where it can be kept
there, else in the harness; ``lock``, ``memory``, or a separate ``redis`` or ``postgres`` server
started for the run (a lock on one system protecting data on another). How it is written
(``write``): ``plain``, ``fenced`` (the store refuses an older fence token, atomically) or
``guarded`` (the write is conditional on the lock still being held, at the store). See
``workloads.stores``.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from backends.base import MAX_MS, Backend, ClientParams, Endpoint, Lease, ServerNeed
from backends.option_values import Option
from checkers import CheckerMap, checker_map

from . import stores
from .base import (
    IDLE,
    ClientContext,
    FinalContext,
    Progress,
    RunParams,
    SetupContext,
    Workload,
    error_text,
)
from .lock_steps import LockSteps
from .stores import SetStore, StaleWrite

MAX_KEYS = 1000
FINAL_TRIES = 20  # final reads of one key, while a healed server may still be coming back
SEPARATE = ("redis", "postgres")  # stores the runtime can start as a server of their own
# A data store keeps what it acknowledged across a kill of its server.
STORE_OPTIONS: dict[str, dict[str, Any]] = {"redis": {"persistence": "always"}, "postgres": {}}


class LockSetWorkload(Workload):
    name = "lock-set"
    description = (
        "add unique elements to a set in a real store under the lock (read, wait, write back); "
        "lost updates against a final read (Jepsen's lock-set)"
    )
    options = {
        "ttl_ms": Option(3000, "lock TTL (lease)", lo=1, hi=MAX_MS, unit="ms", flag="--ttl"),
        "hold_ms": Option(
            10,
            "critical section",
            lo=0,
            hi=MAX_MS,
            unit="ms",
            flag="--hold",
        ),
        "wait_ms": Option(
            500, "how long an acquire waits", lo=0, hi=MAX_MS, unit="ms", flag="--wait"
        ),
        "store": Option(
            "auto",
            "where the set lives: auto (the lock's cluster where it can, else memory), lock, "
            "memory, or a separate redis or postgres server",
            choices=("auto", "lock", "memory", *SEPARATE),
        ),
        "write": Option(
            "plain",
            "plain; fenced (the store refuses older fence tokens); guarded (the store writes "
            "only while the lock is held)",
            choices=stores.MODES,
        ),
        "store_timeout_ms": Option(2000, "timeout of every store call", lo=1, hi=MAX_MS, unit="ms"),
    }
    progress = Progress("adds", "ok", "add")

    def __init__(self, opts: dict[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.store_name = "memory"  # the SetStore class, once prepare placed it
        self.on_lock_cluster = False

    # -- prepare ---------------------------------------------------------------------------

    def prepare(self, cfg: RunParams, backend: Backend) -> None:
        if cfg.keys > MAX_KEYS:
            raise ValueError(
                f"workload lock-set: --keys must be <= {MAX_KEYS} (got {cfg.keys}): each key's "
                "set is set up before the run and read back whole after it"
            )
        backend_name = backend.name
        need = backend.servers()
        own = backend.own_store if need.nodes > 0 else None
        where = self.opts["store"]
        if where == "lock" and own is None:
            raise ValueError(
                f"workload lock-set: store=lock, but lock {backend_name!r} has no cluster here "
                "that can hold the set; use store=memory, redis or postgres"
            )
        if where in ("auto", "lock"):
            self.store_name, self.on_lock_cluster = (own, True) if own else ("memory", False)
            self.opts["store"] = "lock" if own else "memory"  # as the run's config records it
        else:
            self.store_name, self.on_lock_cluster = where, False
        try:
            stores.validate(
                self.store_name,
                self.opts["write"],
                backend_name,
                backend.fenced,
                self.on_lock_cluster,
            )
        except ValueError as e:
            raise ValueError(f"workload lock-set: {e}") from None

    def servers(self) -> dict[str, ServerNeed]:
        if self.store_name in SEPARATE and not self.on_lock_cluster:
            return {"store": ServerNeed(self.store_name, 1, STORE_OPTIONS[self.store_name])}
        return {}

    def _make_store(self, endpoints: list[Endpoint], mp: Any = None) -> SetStore:
        mode, timeout = self.opts["write"], self.opts["store_timeout_ms"]
        if self.store_name == "memory":
            return stores.MemoryStore(mode, [], timeout, ctx=mp)
        return stores.store_class(self.store_name)(mode, endpoints, timeout)

    def _store_endpoints(
        self, lock: list[Endpoint], servers: dict[str, list[Endpoint]]
    ) -> list[Endpoint]:
        return lock if self.on_lock_cluster else servers.get("store", [])

    # -- execute ---------------------------------------------------------------------------

    def shared_state(self, ctx: SetupContext) -> Any:
        """The store, made and emptied before the workers fork: every client finds the empty
        sets. Clients of a real store open their own connections (``run_client``)."""
        if self.store_name == "memory":
            store = self._make_store([], ctx.mp)
        else:
            store = self._make_store(self._store_endpoints(ctx.endpoints, ctx.servers))
        try:
            store.setup([str(k) for k in range(ctx.cfg.keys)])
        finally:
            store.close()
        return store if self.store_name == "memory" else None

    def run_client(self, ctx: ClientContext) -> None:
        store = ctx.shared or self._make_store(self._store_endpoints(ctx.endpoints, ctx.servers))
        try:
            run_client(ctx, self.opts, store)
        finally:
            store.close()

    def final(self, ctx: FinalContext) -> None:
        """Each key's set, read once more on the healed cluster (linearizable where the store
        can be): the read the set checker judges every acknowledged add against."""
        store = ctx.shared or self._make_store(self._store_endpoints(ctx.endpoints, ctx.servers))
        try:
            for key in (str(k) for k in range(ctx.cfg.keys)):
                for _ in range(FINAL_TRIES):
                    # a read changes nothing: any failure is certain, the process goes on
                    read = ctx.call(
                        "read",
                        key,
                        partial(store.final_read, key),
                        ok_value=sorted,
                        certain=(Exception,),
                    )
                    if read.ok:
                        break
                    ctx.recorder.flush()  # a node may still be restarting: try again
                    store.close()
                    if time.monotonic() >= ctx.deadline:
                        return
                    time.sleep(0.25)
        finally:
            ctx.recorder.flush()
            store.close()

    def checkers(self) -> CheckerMap:
        enforced = self.opts["write"] == "fenced"
        return checker_map(("mutex", "fencing", "perf", "set"), fencing_enforced=enforced)

    def lease_ms(self) -> float:
        return float(self.opts["ttl_ms"])

    def stop_grace_s(self) -> float:
        o = self.opts
        return (o["wait_ms"] + o["hold_ms"] + 2 * o["store_timeout_ms"]) / 1000 + 2


def run_client(ctx: ClientContext, opts: dict[str, Any], store: SetStore) -> None:
    cfg, rec, keys = ctx.cfg, ctx.recorder, ctx.keys()
    ttl_ms, wait_ms, hold_s = opts["ttl_ms"], opts["wait_ms"], opts["hold_ms"] / 1000
    steps = LockSteps(ctx, ClientParams(ttl_ms, wait_ms))
    n = 0  # adds attempted: element = index + n * concurrency is unique over the run
    for _ in ctx.turns():
        if steps.client is None and not steps.connect():
            continue
        ki = ctx.rng.randrange(len(keys))
        key = keys[ki]
        lease = steps.acquire(key, ki, ttl_ms, wait_ms)
        if lease is None:
            continue
        element = ctx.index + n * cfg.concurrency
        n += 1
        unknown = _add(ctx, store, key, element, lease, hold_s)
        if not steps.release(key, ki, lease):  # unknown: the client is dropped and retired
            rec.flush()
        elif unknown:  # the add's outcome was unknown: released first, now retired
            ctx.retire()
            rec.flush()
        ctx.set_status(IDLE)
    rec.flush()
    steps.close()


def _add(
    ctx: ClientContext, store: SetStore, key: str, element: int, lease: Lease, hold_s: float
) -> bool:
    """Read, wait, write back with the element: one add. Returns whether its outcome is unknown
    (the process must then retire, once it has invoked its release)."""
    ctx.recorder.flush()
    try:
        current = store.read(key)
    except Exception as e:  # nothing was written: a certain failure of the add
        ctx.not_sent("add", key, f"read failed: {error_text(e)}", element)
        store.close()
        return False
    if hold_s and not ctx.sleep(hold_s):  # the critical section: a pause here outlives the lease
        return False  # the run ended first: no write, straight to release
    # StaleWrite and NotHeld are LockFailed: refused at the store, not written
    added = ctx.call(
        "add",
        key,
        lambda: store.write(key, sorted({*current, element}), lease.fence, lease),
        value=element,
        error=_add_error,
        close=store.close,
        retire=False,
    )
    return added.unknown


def _add_error(e: BaseException) -> str:
    """A stale-fence refusal by its message alone ("stale fence ..."): the fencing checker
    counts such a fail as rejected. Anything else as every op's error."""
    return str(e) if isinstance(e, StaleWrite) else error_text(e)


def set_role(store: str) -> str | None:
    """Where a run's set lived (its ``store`` option as config.json records it), named by the
    role of config.json's ``servers`` rows: the lock's own cluster ("lock"), a server of its own
    ("store"), or None for the harness's memory, which no fault can wipe."""
    return "lock" if store == "lock" else "store" if store in SEPARATE else None
