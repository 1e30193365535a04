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

from backends.base import LockFailed

from .base import ACQUIRING, HOLDING, IDLE, RELEASING, ClientContext

RETRY_PAUSE = 0.05  # after an unknown outcome, before trying again with a fresh client


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def run_client(ctx: ClientContext) -> None:
    cfg, rec, keys = ctx.cfg, ctx.recorder, ctx.keys()
    interval = cfg.concurrency / cfg.rate if cfg.rate > 0 else 0.0
    client = None
    next_at = time.monotonic()
    for _ in range(ctx.max_ops):
        if not ctx.running():
            break
        if interval:
            delay = next_at - time.monotonic()
            if delay > 0:
                rec.flush()
                if not ctx.sleep(delay):
                    break
            next_at += interval * ctx.rng.uniform(0.5, 1.5)
        if client is None:
            try:
                client = ctx.new_client()
            except Exception as e:  # the server may be down: try again later, bounded by the loop
                # no lock operation was sent: a definite failure, the process goes on
                rec.record(ctx.process, "invoke", "connect")
                rec.record(ctx.process, "fail", "connect", error=_error(e))
                rec.flush()
                time.sleep(RETRY_PAUSE)
                continue
        ki = ctx.rng.randrange(len(keys))
        key = keys[ki]
        ctx.set_status(ACQUIRING, ki)
        rec.record(ctx.process, "invoke", "acquire", key)
        rec.flush()
        try:
            lease = client.acquire(key, cfg.ttl_ms, cfg.wait_ms)
        except LockFailed as e:
            rec.record(ctx.process, "fail", "acquire", key, error=_error(e))
            ctx.set_status(IDLE)
            continue
        except Exception as e:
            rec.record(ctx.process, "info", "acquire", key, error=_error(e))
            client = _drop(client)
            ctx.retire()
            rec.flush()
            time.sleep(RETRY_PAUSE)
            continue
        rec.record(ctx.process, "ok", "acquire", key, lease.fence)
        ctx.set_status(HOLDING, ki)
        still, unknown = _hold(ctx, client, key, lease)
        if still and cfg.check_before_write:
            still, unknown = _renew(ctx, client, key, lease)
        if still:
            _write(ctx, ki, key, lease.fence)
        ctx.set_status(RELEASING, ki)
        rec.record(ctx.process, "invoke", "release", key, lease.fence)
        rec.flush()
        try:
            client.release(lease)
        except LockFailed as e:
            rec.record(ctx.process, "fail", "release", key, lease.fence, error=_error(e))
        except Exception as e:
            rec.record(ctx.process, "info", "release", key, lease.fence, error=_error(e))
            client = _drop(client)
            ctx.retire()
            rec.flush()
            time.sleep(RETRY_PAUSE)
            continue
        else:
            rec.record(ctx.process, "ok", "release", key, lease.fence)
        if unknown:  # the renew's outcome was unknown: released first, now retired
            client = _drop(client)
            ctx.retire()
        ctx.set_status(IDLE)
    rec.flush()
    if client is not None:
        _drop(client)


def _hold(ctx: ClientContext, client, key: str, lease) -> tuple[bool, bool]:
    """The critical section's duration; with ``renew_ms`` the holder renews its lease that
    often while it holds (a lease longer than the TTL, kept alive). Returns as ``_renew``; a
    hold cut short by the end of the run skips the write and goes to release."""
    cfg, rec = ctx.cfg, ctx.recorder
    if not cfg.hold_ms:
        return True, False
    rec.flush()
    if cfg.renew_ms <= 0:
        return ctx.sleep(cfg.hold_ms / 1000), False
    end = time.monotonic() + cfg.hold_ms / 1000
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return True, False
        if not ctx.sleep(min(cfg.renew_ms / 1000, left)):
            return False, False
        if time.monotonic() < end:
            still, unknown = _renew(ctx, client, key, lease)
            if not still:
                return still, unknown


def _renew(ctx: ClientContext, client, key: str, lease) -> tuple[bool, bool]:
    """Check the lock is still ours (a renew) before acting as holder.

    Returns (still holder, outcome unknown). A refused or unknown renew means the client stops
    acting as holder: it skips the write and goes straight to release.
    """
    rec, cfg = ctx.recorder, ctx.cfg
    rec.record(ctx.process, "invoke", "renew", key, lease.fence)
    rec.flush()
    try:
        client.renew(lease, cfg.ttl_ms)
    except LockFailed as e:
        rec.record(ctx.process, "fail", "renew", key, lease.fence, error=_error(e))
        return False, False
    except NotImplementedError as e:  # this lock cannot renew: nothing was sent
        rec.record(ctx.process, "fail", "renew", key, lease.fence, error=_error(e))
        return True, False
    except Exception as e:
        rec.record(ctx.process, "info", "renew", key, lease.fence, error=_error(e))
        return False, True
    rec.record(ctx.process, "ok", "renew", key, lease.fence)
    return True, False


def _write(ctx: ClientContext, ki: int, key: str, fence: int | None) -> None:
    """The protected write; the witness is in-harness, so its outcome is always known."""
    rec = ctx.recorder
    rec.record(ctx.process, "invoke", "write", key, fence)
    try:
        ctx.witness.write(ki, fence)
    except Exception as e:
        rec.record(ctx.process, "fail", "write", key, fence, error=str(e))
    else:
        rec.record(ctx.process, "ok", "write", key, fence)


def _drop(client) -> None:
    try:
        client.close()
    except Exception:
        pass
    return None
