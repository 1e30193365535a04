"""Backends are found through the ``harness.backends`` entry point group, so a lock library
can ship its own adapter: ``[project.entry-points."harness.backends"] mylock = "pkg.mod:Cls"``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points

from .base import Backend
from .errors import LockHarnessError

GROUP = "harness.backends"


class UnknownBackend(LockHarnessError, ValueError):
    pass


# Backends registered for a while by ``registered`` (a test's seeded-bug subclass), by name.
_REGISTERED: dict[str, type[Backend]] = {}


@contextmanager
def registered(*classes: type[Backend]) -> Iterator[None]:
    """Make backend classes known by their ``name`` inside the block, in this process and the
    client workers it forks: a test-only backend (a seeded-bug subclass for a CI gate) needs no
    entry point and no monkeypatching. A name the block registers hides an installed one."""
    before = dict(_REGISTERED)
    _REGISTERED.update({c.name: c for c in classes})
    try:
        yield
    finally:
        _REGISTERED.clear()
        _REGISTERED.update(before)


def names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)} | set(_REGISTERED))


def backend_class(name: str) -> type[Backend]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise UnknownBackend(f"unknown backend {name!r}; valid: {', '.join(names())}")


def make(name: str, opts: dict[str, str] | None = None) -> Backend:
    return backend_class(name)(opts)
