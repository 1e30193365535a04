"""Data stores for the ``lock-set`` workload: where the protected set lives, and how it is written.

Stores are found through the ``harness.stores`` entry point group, as backends, workloads and
nemeses are through theirs (the built-in ones are registered there too, in pyproject.toml). A
lock backend declares the store its own cluster can hold (``Backend.own_store``, used when
``store=`` is left unset). ``make_store`` validates the write mode against the lock first, so an
impossible combination is refused in one line before any server starts.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from backends.base import Endpoint

from .base import MODES, NotHeld, SetStore, StaleWrite
from .memory import MemoryStore

GROUP = "harness.stores"


def names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def store_class(name: str) -> type[SetStore]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise ValueError(f"store {name!r} is not one of {', '.join(names())}")


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
    "GROUP",
    "MODES",
    "MemoryStore",
    "NotHeld",
    "SetStore",
    "StaleWrite",
    "make_store",
    "names",
    "store_class",
    "validate",
]
