"""A client's lock steps, each recorded: connect, acquire, release.

Every lock workload's client loop takes the lock the same way, and its history must say the same
things in the same order whatever the workload: the invoke is flushed before the call goes out,
a refusal (``LockFailed``) is a ``fail``, any other error an ``info`` whose client is dropped and
whose process is retired. ``LockSteps`` holds the client between the steps (one per client loop,
made once: the steps allocate nothing per op beyond what the recorder does).
"""

from __future__ import annotations

import time

from backends.base import Lease, LockClient, LockFailed

from .base import ACQUIRING, HOLDING, IDLE, RELEASING, ClientContext

RETRY_PAUSE = 0.05  # s after an unknown outcome, before trying again with a fresh client


def error_text(e: BaseException) -> str:
    """An exception as an op's ``error``: its type, and its message when it has one."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def drop(client: LockClient) -> None:
    """Close a client whose connection may be broken; returns None, the client's new value."""
    try:
        client.close()
    except Exception:
        pass
    return None


class LockSteps:
    """One client loop's lock client and its recorded steps."""

    __slots__ = ("ctx", "rec", "client")

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.rec = ctx.recorder
        self.client: LockClient | None = None

    def connect(self) -> bool:
        """Make a client if there is none. False when the server could not be reached: the
        failure is recorded (nothing was sent, so it is certain) and the caller tries again on
        its next round, after a pause."""
        if self.client is not None:
            return True
        ctx, rec = self.ctx, self.rec
        try:
            self.client = ctx.new_client()
        except Exception as e:  # the server may be down: try again later, bounded by the loop
            rec.record(ctx.process, "invoke", "connect")
            rec.record(ctx.process, "fail", "connect", error=error_text(e))
            rec.flush()
            time.sleep(RETRY_PAUSE)
            return False
        return True

    def acquire(self, key: str, key_index: int, ttl_ms: int, wait_ms: int) -> Lease | None:
        """Acquire ``key``; the lease, or None when it was not taken: refused (``fail``, the
        client goes on, IDLE) or unknown (``info``: the client is dropped, the process retired,
        after a pause). On success the status is HOLDING."""
        ctx, rec, client = self.ctx, self.rec, self.client
        assert client is not None
        ctx.set_status(ACQUIRING, key_index)
        rec.record(ctx.process, "invoke", "acquire", key)
        rec.flush()
        try:
            lease = client.acquire(key, ttl_ms, wait_ms)
        except LockFailed as e:
            rec.record(ctx.process, "fail", "acquire", key, error=error_text(e))
            ctx.set_status(IDLE)
            return None
        except Exception as e:
            rec.record(ctx.process, "info", "acquire", key, error=error_text(e))
            self.client = drop(client)
            ctx.retire()
            rec.flush()
            time.sleep(RETRY_PAUSE)
            return None
        rec.record(ctx.process, "ok", "acquire", key, lease.fence)
        ctx.set_status(HOLDING, key_index)
        return lease

    def release(self, key: str, key_index: int, lease: Lease) -> bool:
        """Release ``lease``. False when the outcome is
        unknown (``info``): the client is dropped and the process retired; the caller decides
        whether to flush and pause. A refusal (``fail``) or success returns True."""
        ctx, rec, client = self.ctx, self.rec, self.client
        assert client is not None
        ctx.set_status(RELEASING, key_index)
        rec.record(ctx.process, "invoke", "release", key, lease.fence)
        rec.flush()
        try:
            client.release(lease)
        except LockFailed as e:
            rec.record(ctx.process, "fail", "release", key, lease.fence, error=error_text(e))
        except Exception as e:
            rec.record(ctx.process, "info", "release", key, lease.fence, error=error_text(e))
            self.client = drop(client)
            ctx.retire()
            return False
        else:
            rec.record(ctx.process, "ok", "release", key, lease.fence)
        return True

    def close(self) -> None:
        """Drop the client, if any: at the end of the loop, or when the process retires."""
        if self.client is not None:
            self.client = drop(self.client)
