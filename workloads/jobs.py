"""The jobs workload: at-most-once scheduled work, ShedLock's use case.

Every ``period_ms`` a job is due; its slot is ``floor(t / period)`` on the history's clock. Every
client is a scheduler node that tries to run each slot: shortly after the slot starts (up to
``skew_ms`` late, as nodes' timers differ) it takes the lock named for the job with a TTL
(``ttl_ms``, ``--ttl``: ShedLock's ``lockAtMostFor``) without waiting, runs the job (an ``exec`` op:
invoked when the body starts, completed after ``duration_ms``, value ``{"slot", "period"}``),
keeps the lock at least ``min_hold_ms`` from taking it (``lockAtLeastFor``) and releases. A
node that finds the job locked skips that slot.

``schedule``: ``rate`` fires every slot, and a node that fell behind (a pause) fires the slots
it missed as soon as it can, one after the other, as a fixed-rate timer does (Spring's
``fixedRate``); ``cron`` fires only the next slot to come after the node's last run. Under a
pause past the TTL the lock is gone while its holder is frozen: the others run the next slots,
and a ``rate`` node that wakes up runs them again.

The checker ``jobs`` counts double executions (invalid), missed slots and overlap; the lock's
own ops are checked for mutual exclusion as in every lock history.
"""

from __future__ import annotations

import time
from typing import Any

from backends.base import MAX_MS, Backend, ClientParams
from backends.option_values import Option
from checkers import CheckerMap, checker_map

from .base import IDLE, ClientContext, Progress, RunParams, Workload
from .lock_steps import LockSteps

JOB = "job"  # the one job, and the name of its lock
MS = 1_000_000  # ns


class JobsWorkload(Workload):
    name = "jobs"
    description = (
        "scheduled jobs (ShedLock): every period each client tries to run the due slot under "
        "the job's lock; double executions, missed slots, overlap"
    )
    options = {
        "period_ms": Option(1000, "a slot is due every period", lo=10, hi=MAX_MS, unit="ms"),
        "ttl_ms": Option(3000, "lock TTL (lease)", lo=1, hi=MAX_MS, unit="ms", flag="--ttl"),
        "min_hold_ms": Option(
            500, "keep the lock at least this long: lockAtLeastFor", lo=0, hi=MAX_MS, unit="ms"
        ),
        "duration_ms": Option(50, "how long the job runs", lo=0, hi=MAX_MS, unit="ms"),
        "skew_ms": Option(
            100, "a node fires up to this long after the slot starts", lo=0, hi=MAX_MS, unit="ms"
        ),
        "schedule": Option(
            "rate",
            "rate: a late node fires the slots it missed (fixedRate); cron: only the next one",
            choices=("rate", "cron"),
        ),
    }
    progress = Progress("runs", "invoke", "exec")

    def prepare(self, cfg: RunParams, backend: Backend) -> None:
        o = self.opts
        if o["min_hold_ms"] > o["ttl_ms"]:
            raise ValueError(
                f"workload jobs: min_hold_ms={o['min_hold_ms']} exceeds ttl_ms={o['ttl_ms']} "
                "(lockAtLeastFor must not exceed lockAtMostFor, as ShedLock requires)"
            )
        if o["skew_ms"] >= o["period_ms"]:
            raise ValueError(
                f"workload jobs: skew_ms={o['skew_ms']} must be below period_ms={o['period_ms']}"
            )

    def run_client(self, ctx: ClientContext) -> None:
        run_client(ctx, self.opts)

    def checkers(self) -> CheckerMap:
        return checker_map(("mutex", "fencing", "perf", "jobs"))

    def lease_ms(self) -> float:
        return float(self.opts["ttl_ms"])

    def stop_grace_s(self) -> float:
        o = self.opts
        return (max(o["duration_ms"], o["min_hold_ms"]) + o["period_ms"]) / 1000 + 2


def _sleep_until(ctx: ClientContext, t_ns: int) -> bool:
    """Sleep until the history clock reads ``t_ns``; False when the run ends first."""
    ctx.recorder.flush()
    left = (t_ns - ctx.recorder.now()) / 1e9
    return ctx.sleep(left) if left > 0 else ctx.running()


def run_client(ctx: ClientContext, opts: dict[str, Any]) -> None:
    rec = ctx.recorder
    period = opts["period_ms"]
    pns = period * MS
    ttl_ms, min_hold_s = opts["ttl_ms"], opts["min_hold_ms"] / 1000
    cron = opts["schedule"] == "cron"
    steps = LockSteps(ctx, ClientParams(ttl_ms, 0))  # ShedLock never waits
    # The lock client is made before the run's clock starts (new_client then passes the start
    # gate, connected or not), so the slots below count on the run's clock.
    steps.connect()
    ctx.begin()  # a no-op once passed (or without a gate)
    slot = rec.now() // pns + 1  # the first slot to start after this node did
    for _ in range(ctx.max_ops):
        if not ctx.running():
            break
        fire_at = slot * pns + int(ctx.rng.uniform(0, opts["skew_ms"]) * MS)
        # after failures the backoff may hold the node past its fire time, as a real one
        if not _sleep_until(ctx, fire_at) or not ctx.back_off() or not ctx.running():
            break
        if cron and rec.now() >= (slot + 1) * pns:  # woke after its slot: a cron timer skips it
            slot = rec.now() // pns + 1
            continue
        this, slot = slot, slot + 1
        if steps.client is None and not steps.connect():
            continue
        lease = steps.acquire(JOB, 0, ttl_ms, 0)  # ShedLock never waits: locked means skip
        if lease is None:
            continue
        taken = time.monotonic()  # lockAtLeastFor counts from the grant
        _run_job(ctx, this, period, opts["duration_ms"])
        rest = taken + min_hold_s - time.monotonic()
        if rest > 0:  # lockAtLeastFor: later nodes of this slot must still find it locked
            rec.flush()
            time.sleep(rest)  # in full even as the run ends: an early release lets one in
        steps.release(JOB, 0, lease)  # an unknown outcome drops the client and retires
        ctx.set_status(IDLE)
        if cron:  # the next fire comes after this run, never for a slot already past
            slot = max(slot, rec.now() // pns + 1)
    rec.flush()
    steps.close()


def _run_job(ctx: ClientContext, slot: int, period: int, duration_ms: int) -> None:
    """The job body: in the harness, so it always completes; its start is what counts."""
    done = {"slot": slot, "period": period, "duration": duration_ms}
    ctx.call(
        "exec",
        JOB,
        # the job ends early only when the run does
        lambda: ctx.sleep(duration_ms / 1000) if duration_ms else True,
        value={"slot": slot, "period": period},
        ok_value=lambda _: done,
    )
