"""The data store a ``lock-set`` client reads and writes under the lock: one set per key.

A store lives either on the lock's own cluster (a Redis key, a PostgreSQL row, an etcd key, a
ZooKeeper znode), in the harness (``memory``), or on a separate server the runtime starts. It is
made in the harness process (``setup`` runs there, before the workers fork); each worker opens
its own connection on first use, so one store object serves every forked client.

Write modes:

- ``plain``: write whatever was computed (the usual code);
- ``fenced``: the store itself refuses, atomically, a write whose fence token is older than the
  last one it accepted (Kleppmann's fix); equal tokens pass (one holder writing twice);
- ``guarded``: the write is conditional on the lock still being held by the writer, checked at
  the store in the same atomic step (Jepsen's ``lock-etcd-set``).

Outcomes follow ``backends.base``: a write that returns took effect; ``StaleWrite`` and
``NotHeld`` (both ``LockFailed``) certainly did not; any other exception is unknown. Every call
has a timeout.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from backends.base import Endpoint, Lease, LockFailed

MODES = ("plain", "fenced", "guarded")


class StaleWrite(LockFailed):
    """Fenced write refused: its token is older than one the store already accepted. The message
    starts with "stale fence", which the fencing checker counts as a rejection."""


class NotHeld(LockFailed):
    """Guarded write refused: the writer no longer holds the lock at the store."""


class SetStore(ABC):
    """One set of integers per key, and the write modes this store can express."""

    name: ClassVar[str]
    #: Lock backends whose lock this store can check in ``guarded`` mode (on the same cluster).
    guards: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, mode: str, endpoints: list[Endpoint], timeout_ms: int = 2000) -> None:
        if mode not in MODES:
            raise ValueError(f"write mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.endpoints = endpoints
        self.timeout_ms = timeout_ms
        self._pid: int | None = None
        self._conn: Any = None

    @classmethod
    def validate(
        cls, mode: str, lock_backend: str, lock_fences: bool, on_lock_cluster: bool
    ) -> None:
        """Refuse, in one line, a write mode this store cannot express with this lock."""
        if mode not in MODES:
            raise ValueError(f"write mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "fenced" and not lock_fences:
            raise ValueError(
                f"write=fenced needs fence tokens, and lock {lock_backend!r} gives none; "
                "use write=plain or a lock with fencing"
            )
        if mode == "guarded" and not cls.guards:
            raise ValueError(
                f"write=guarded: store {cls.name!r} cannot check the lock (it does not see it); "
                "use write=plain or write=fenced"
            )
        if mode == "guarded" and not (lock_backend in cls.guards and on_lock_cluster):
            raise ValueError(
                f"write=guarded: store {cls.name!r} can check the lock only on the lock's own "
                f"cluster with lock {', '.join(sorted(cls.guards))}, not with lock "
                f"{lock_backend!r}; use write=plain or write=fenced"
            )

    # -- the interface ---------------------------------------------------------------------

    @abstractmethod
    def setup(self, keys: list[str]) -> None:
        """In the harness process, before workers fork: create each key's set, empty."""

    @abstractmethod
    def read(self, key: str) -> list[int]:
        """The set as stored now."""

    @abstractmethod
    def write(self, key: str, elements: list[int], fence: int | None, lease: Lease | None) -> None:
        """Replace the set, in this store's write mode; StaleWrite or NotHeld when refused."""

    def final_read(self, key: str) -> list[int]:
        """The read at the end of a run, after every fault healed: linearizable."""
        return self.read(key)

    def close(self) -> None:
        """Drop this process's connection."""
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._close(self._conn)
            finally:
                self._conn = None

    # -- per-process connections -----------------------------------------------------------

    def conn(self) -> Any:
        """This process's connection: a forked worker never uses its parent's socket."""
        if self._pid != os.getpid():
            self._conn = None
            self._pid = os.getpid()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> Any:
        return None

    def _close(self, conn: Any) -> None:  # noqa: B027 - optional hook
        pass

    def _check_fence(self, fence: int | None) -> int:
        if self.mode == "fenced" and fence is None:
            raise ValueError("write=fenced needs the lease's fence token, got none")
        return -1 if fence is None else fence

    def _lease(self, lease: Lease | None) -> Lease:
        if lease is None:
            raise ValueError("write=guarded needs the writer's lease, got none")
        return lease
