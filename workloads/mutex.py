"""The mutex workload: acquire -> critical section (hold, then write the resource) -> release.

With ``renew_ms`` the holder renews its lease that often during the hold, so holds may be
longer than the TTL. With ``check_before_write`` the holder renews its lease right before the
write, as a careful
client checks it still holds the lock before acting; a refused renew makes it skip the write
and release. A pause can still fall between the check and the write: only fencing closes that.

The write comes at the end of the critical section, where a holder that was paused past its TTL
would do its damage (Kleppmann's GC-pause scenario). A holder always invokes release before it
stops or is retired, so every hold ends in a recorded release attempt.
"""

from __future__ import annotations

import time
from typing import Any

from backends.base import MAX_MS, ClientParams, Lease, LockClient, LockFailed
from backends.option_values import Option
from checkers import CheckerMap, lock_checkers

from .base import IDLE, ClientContext, Progress, SetupContext, Workload
from .lock_steps import LockSteps
from .resource import ProtectedResource


class MutexWorkload(Workload):
    name = "mutex"
    description = (
        "acquire a lock, hold it, write the protected resource with the fence token, release"
    )
    options = {
        "ttl_ms": Option(3000, "lock TTL (lease)", lo=1, hi=MAX_MS, unit="ms", flag="--ttl"),
        "hold_ms": Option(10, "critical section", lo=0, hi=MAX_MS, unit="ms", flag="--hold"),
        "wait_ms": Option(
            500, "how long an acquire waits", lo=0, hi=MAX_MS, unit="ms", flag="--wait"
        ),
        "fencing": Option(
            False,
            "the protected resource rejects stale fence tokens",
            flag="--fencing/--no-fencing",
        ),
        "renew_ms": Option(
            0,
            "holders renew their lease every this many ms while holding (0: never)",
            lo=0,
            hi=MAX_MS,
            unit="ms",
            flag="--renew-every",
        ),
        "check_before_write": Option(
            False,
            "holders renew their lease right before writing and skip the write if it was lost",
            flag="--check-before-write",
        ),
    }
    progress = Progress("grants", "ok", "acquire")

    def shared_state(self, ctx: SetupContext) -> Any:
        return ProtectedResource(ctx.mp, ctx.cfg.keys, self.opts["fencing"])

    def run_client(self, ctx: ClientContext) -> None:
        run_client(ctx, self.opts)

    def checkers(self) -> CheckerMap:
        return lock_checkers(fencing_enforced=self.opts["fencing"])

    def lease_ms(self) -> float:
        return float(self.opts["ttl_ms"])

    def cooperative(self) -> bool:
        return True  # its resource is shared memory, a write holds its stripe for microseconds

    def stop_grace_s(self) -> float:
        # a hold wakes at once (it watches the stop flag); an acquire may wait up to wait_ms
        return self.opts["wait_ms"] / 1000 + 2


def run_client(ctx: ClientContext, opts: dict[str, Any]) -> None:
    rec, keys = ctx.recorder, ctx.keys()
    ttl_ms, wait_ms = opts["ttl_ms"], opts["wait_ms"]
    steps = LockSteps(ctx, ClientParams(ttl_ms, wait_ms))
    for _ in ctx.turns():
        if steps.client is None and not steps.connect():
            continue
        ki = ctx.rng.randrange(len(keys))
        key = keys[ki]
        lease = steps.acquire(key, ki, ttl_ms, wait_ms)
        if lease is None:
            continue
        client = steps.client
        assert client is not None  # the acquire went out on it
        still, unknown = _hold(ctx, opts, client, key, lease)
        if still and opts["check_before_write"]:
            still, unknown = _renew(ctx, opts, client, key, lease)
        if still:
            _write(ctx, ki, key, lease.fence)
        if not steps.release(key, ki, lease):  # unknown: dropped, retired, backing off
            rec.flush()
            continue
        if unknown:  # the renew's outcome was unknown: released first, now retired
            steps.close()
            ctx.retire()
        ctx.set_status(IDLE)
    rec.flush()
    steps.close()


def _hold(
    ctx: ClientContext, opts: dict[str, Any], client: LockClient, key: str, lease: Lease
) -> tuple[bool, bool]:
    """The critical section's duration; with ``renew_ms`` the holder renews its lease that
    often while it holds (a lease longer than the TTL, kept alive). Returns as ``_renew``; a
    hold cut short by the end of the run skips the write and goes to release."""
    rec, hold_ms, renew_ms = ctx.recorder, opts["hold_ms"], opts["renew_ms"]
    if not hold_ms:
        return True, False
    rec.flush()
    if renew_ms <= 0:
        return ctx.sleep(hold_ms / 1000), False
    end = time.monotonic() + hold_ms / 1000
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return True, False
        if not ctx.sleep(min(renew_ms / 1000, left)):
            return False, False
        if time.monotonic() < end:
            still, unknown = _renew(ctx, opts, client, key, lease)
            if not still:
                return still, unknown


def _renew(
    ctx: ClientContext, opts: dict[str, Any], client: LockClient, key: str, lease: Lease
) -> tuple[bool, bool]:
    """Check the lock is still ours (a renew) before acting as holder.

    Returns (still holder, outcome unknown). A refused or unknown renew means the client stops
    acting as holder: it skips the write and goes straight to release, and retires after it.
    A lock that cannot renew (``NotImplementedError``: nothing was sent) leaves it holder.
    """
    renewed = ctx.call(
        "renew",
        key,
        lambda: client.renew(lease, opts["ttl_ms"]),
        value=lease.fence,
        certain=(LockFailed, NotImplementedError),
        retire=False,  # the client keeps the lock client: its release goes out first
    )
    if renewed.ok or isinstance(renewed.error, NotImplementedError):
        return True, False
    return False, renewed.unknown


def _write(ctx: ClientContext, ki: int, key: str, fence: int | None) -> None:
    """The protected write; the resource is in-harness, so its outcome is always known: any
    error is a ``fail``, recorded by its message ("stale fence ...", which the fencing checker
    counts as rejected)."""
    ctx.call(
        "write",
        key,
        lambda: ctx.shared.write(ki, fence),
        value=fence,
        certain=(Exception,),
        error=str,
    )
