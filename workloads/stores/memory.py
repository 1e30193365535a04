"""The set kept in the harness (Jepsen's ``lock-set``): shared memory every forked worker sees.

Per key: a fixed-capacity array of int64 elements, its length, the highest fence accepted, and
a lock held only while copying (a per-key lock, so writers of other keys never wait). The arrays
are made in ``setup``, before the workers fork, as ``workloads.resource`` makes its fence table.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from backends.base import Endpoint, Lease

from .base import SetStore, StaleWrite


class MemoryStore(SetStore):
    name = "memory"

    def __init__(
        self,
        mode: str,
        endpoints: list[Endpoint] | None = None,
        timeout_ms: int = 2000,
        *,
        ctx: Any = None,
        capacity: int = 100_000,
    ) -> None:
        super().__init__(mode, endpoints or [], timeout_ms)
        if mode == "guarded":  # also refused by validate(): a store in the harness sees no lock
            raise ValueError(
                "write=guarded: store 'memory' cannot see the lock; use plain or fenced"
            )
        # the workers are forked (harness.run.workers.context): shared memory made here is theirs
        self.ctx = ctx or multiprocessing.get_context("fork")
        self.capacity = capacity
        self.index: dict[str, int] = {}
        self._data: list[Any] = []
        self._len: Any = None
        self._fence: Any = None
        self._locks: list[Any] = []

    def setup(self, keys: list[str]) -> None:
        self.index = {k: i for i, k in enumerate(keys)}
        n = len(keys)
        self._data = [self.ctx.RawArray("q", self.capacity) for _ in keys]
        self._len = self.ctx.RawArray("q", n)
        self._fence = self.ctx.RawArray("q", [-1] * n)
        self._locks = [self.ctx.Lock() for _ in keys]

    def _slot(self, key: str) -> int:
        try:
            return self.index[key]
        except KeyError:
            raise ValueError(f"key {key!r} was not set up in the memory store") from None

    def _locked(self, i: int) -> Any:
        lock = self._locks[i]
        if not lock.acquire(timeout=self.timeout_ms / 1000):
            raise TimeoutError(f"memory store: key lock busy for {self.timeout_ms} ms")
        return lock

    def read(self, key: str) -> list[int]:
        i = self._slot(key)
        lock = self._locked(i)
        try:
            return list(self._data[i][: self._len[i]])
        finally:
            lock.release()

    def write(self, key: str, elements: list[int], fence: int | None, lease: Lease | None) -> None:
        i = self._slot(key)
        if len(elements) > self.capacity:
            raise ValueError(
                f"memory store: {len(elements)} elements exceed capacity {self.capacity}"
            )
        f = self._check_fence(fence)
        lock = self._locked(i)
        try:
            if self.mode == "fenced":
                top = self._fence[i]
                if f < top:
                    raise StaleWrite(f"stale fence token {f} < {top}")
                self._fence[i] = f
            self._data[i][: len(elements)] = elements
            self._len[i] = len(elements)
        finally:
            lock.release()
