"""Data stores for the ``lock-set`` workload: where the protected set lives, and how it is written.

``STORES`` maps a ``store=`` value to its class; a lock backend declares the store its own
cluster can hold (``Backend.own_store``, used when ``store=`` is left unset). ``make_store`` validates the write
mode against the lock first, so an impossible combination is refused in one line before any
server starts.
"""

from __future__ import annotations

from backends.base import Endpoint

from .base import MODES, NotHeld, SetStore, StaleWrite
from .etcd import EtcdStore
from .memory import MemoryStore
from .postgres import PostgresStore
from .redis import RedisStore
from .zookeeper import ZooKeeperStore

STORES: dict[str, type[SetStore]] = {
    "memory": MemoryStore,
    "redis": RedisStore,
    "postgres": PostgresStore,
    "etcd": EtcdStore,
    "zookeeper": ZooKeeperStore,
}


def store_class(name: str) -> type[SetStore]:
    try:
        return STORES[name]
    except KeyError:
        raise ValueError(f"store {name!r} is not one of {', '.join(STORES)}") from None


def validate(
    store: str, mode: str, lock_backend: str, lock_fences: bool, on_lock_cluster: bool
) -> type[SetStore]:
    """Refuse, in one line, a store or write mode that cannot work with this lock."""
    cls = store_class(store)
    cls.validate(mode, lock_backend, lock_fences, on_lock_cluster)
    return cls


def make_store(
    store: str,
    mode: str,
    endpoints: list[Endpoint],
    *,
    lock_backend: str,
    lock_fences: bool,
    on_lock_cluster: bool,
    timeout_ms: int = 2000,
) -> SetStore:
    cls = validate(store, mode, lock_backend, lock_fences, on_lock_cluster)
    return cls(mode, endpoints, timeout_ms)


__all__ = [
    "MODES",
    "STORES",
    "NotHeld",
    "SetStore",
    "StaleWrite",
    "make_store",
    "store_class",
    "validate",
]
