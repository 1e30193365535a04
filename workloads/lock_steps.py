"""A client's lock steps, each recorded: connect, acquire, release.

Every lock workload's client loop takes the lock the same way, and its history must say the same
things in the same order whatever the workload; each step is one ``ClientContext.call`` (a
refusal, ``LockFailed``, is a ``fail``; any other error an ``info`` whose client is dropped and
whose process is retired). ``LockSteps`` holds the client between the steps (one per client
loop, made once). A step never sleeps: a failure sets the client's backoff (``ClientContext``),
which the loop waits out before its next attempt.
"""

from __future__ import annotations

from backends.base import ClientParams, Lease, LockClient

from .base import ACQUIRING, HOLDING, IDLE, RELEASING, ClientContext, error_text


class LockSteps:
    """One client loop's lock client and its recorded steps."""

    __slots__ = ("ctx", "client", "params")

    def __init__(self, ctx: ClientContext, params: ClientParams | None = None) -> None:
        self.ctx = ctx
        self.params = params  # the TTL and wait its clients are made for
        self.client: LockClient | None = None

    def connect(self) -> bool:
        """Make a client if there is none. False when the server could not be reached: the
        failure is recorded (nothing was sent, so it is certain) and the caller tries again on
        its next round, after the backoff's pause."""
        if self.client is not None:
            return True
        ctx = self.ctx
        try:
            self.client = ctx.new_client(self.params)
        except Exception as e:  # the server may be down: try again later, bounded by the loop
            ctx.not_sent("connect", None, error_text(e))
            ctx.recorder.flush()
            return False
        return True

    def acquire(self, key: str, key_index: int, ttl_ms: int, wait_ms: int) -> Lease | None:
        """Acquire ``key``; the lease, or None when it was not taken: refused (``fail``, the
        client goes on, IDLE) or unknown (``info``: the client is dropped, the process retired).
        On success the status is HOLDING."""
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
        if got.unknown:  # dropped and retired: the backoff paces the fresh client's try
            ctx.recorder.flush()
        else:
            ctx.set_status(IDLE)
        return None

    def release(self, key: str, key_index: int, lease: Lease) -> bool:
        """Release ``lease``. False when the outcome is unknown (``info``): the client is
        dropped and the process retired, and the backoff paces the next acquire. A
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
