"""The protected resource: what a lock holder writes to in its critical section.

It remembers, per key, the highest fence token it has accepted, in shared memory that every
worker process sees. With fencing enforced it rejects a write whose token is lower, as a storage
system that checks fencing tokens would; without, it accepts everything and the fencing checker
counts, from the history, the stale writes that fencing would have rejected.
"""

from __future__ import annotations

from typing import Any


class StaleFence(Exception):
    """A write refused: its fence token is older than one already accepted."""


# Locks striped over keys: each multiprocessing lock is a POSIX semaphore mapped into memory,
# and a lock per key ran out of memory mappings (ENOMEM) at about 65,000 keys.
LOCK_STRIPES = 256


class ProtectedResource:
    def __init__(self, ctx: Any, keys: int, enforce: bool) -> None:
        self.enforce = enforce
        self._max = ctx.Array("q", keys, lock=False)
        # a write holds its stripe for microseconds: holders of most other keys never wait
        self._locks = [ctx.Lock() for _ in range(min(keys, LOCK_STRIPES))]

    def write(self, key_index: int, fence: int | None) -> None:
        """Accept or reject one write; raise StaleFence when enforcing and the token is old."""
        if fence is None:
            return
        with self._locks[key_index % len(self._locks)]:
            top = self._max[key_index]
            if self.enforce and fence < top:
                raise StaleFence(f"stale fence token {fence} < {top}")
            if fence > top:
                self._max[key_index] = fence
