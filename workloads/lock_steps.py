"""A client's lock steps, each recorded: connect, acquire, release.

Every lock workload's client loop takes the lock the same way, and its history must say the same
things in the same order whatever the workload; each step is one ``ClientContext.call`` (a
refusal, ``LockFailed``, is a ``fail``; any other error an ``info`` whose client is dropped and
whose process is retired). ``LockSteps`` holds the client between the steps (one per client
loop, made once).
"""

from __future__ import annotations

import time

from backends.base import Lease, LockClient

from .base import ACQUIRING, HOLDING, IDLE, RELEASING, ClientContext, error_text

RETRY_PAUSE = 0.05  # s after an unknown outcome, before trying again with a fresh client


class LockSteps:
    """One client loop's lock client and its recorded steps."""

    __slots__ = ("ctx", "client")

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.client: LockClient | None = None

    def connect(self) -> bool:
        """Make a client if there is none. False when the server could not be reached: the
        failure is recorded (nothing was sent, so it is certain) and the caller tries again on
        its next round, after a pause."""
        if self.client is not None:
            return True
        ctx = self.ctx
        try:
            self.client = ctx.new_client()
        except Exception as e:  # the server may be down: try again later, bounded by the loop
            ctx.not_sent("connect", None, error_text(e))
            ctx.recorder.flush()
            time.sleep(RETRY_PAUSE)
            return False
        return True

    def acquire(self, key: str, key_index: int, ttl_ms: int, wait_ms: int) -> Lease | None:
        """Acquire ``key``; the lease, or None when it was not taken: refused (``fail``, the
        client goes on, IDLE) or unknown (``info``: the client is dropped, the process retired,
        after a pause). On success the status is HOLDING."""
        ctx, client = self.ctx, self.client
        assert client is not None
        ctx.set_status(ACQUIRING, key_index)
        got = ctx.call(
            "acquire",
            key,
            lambda: client.acquire(key, ttl_ms, wait_ms),
            ok_value=_fence,
            close=self.close,
        )
        if got.ok:
            ctx.set_status(HOLDING, key_index)
            return got.result
        if got.unknown:  # dropped and retired: pause before a fresh client tries again
            ctx.recorder.flush()
            time.sleep(RETRY_PAUSE)
        else:
            ctx.set_status(IDLE)
        return None

    def release(self, key: str, key_index: int, lease: Lease) -> bool:
        """Release ``lease``. False when the outcome is unknown (``info``): the client is
        dropped and the process retired; the caller decides whether to flush and pause. A
        refusal (``fail``) or success returns True."""
        ctx, client = self.ctx, self.client
        assert client is not None
        ctx.set_status(RELEASING, key_index)
        out = ctx.call(
            "release", key, lambda: client.release(lease), value=lease.fence, close=self.close
        )
        return not out.unknown

    def close(self) -> None:
        """Drop the client, if any: at the end of the loop, or when the process retires. Its
        connection may be broken, so closing it may fail: ignored."""
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def _fence(lease: Lease) -> int | None:
    """An acquire's ``ok`` value: the lease's fence token."""
    return lease.fence
