"""Backends are found through the ``harness.backends`` entry point group, so a lock library
can ship its own adapter: ``[project.entry-points."harness.backends"] mylock = "pkg.mod:Cls"``."""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import Backend
from .errors import LockHarnessError

GROUP = "harness.backends"


class UnknownBackend(LockHarnessError, ValueError):
    pass


def names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def backend_class(name: str) -> type[Backend]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise UnknownBackend(f"unknown backend {name!r}; valid: {', '.join(names())}")


def make(name: str, opts: dict[str, str] | None = None) -> Backend:
    return backend_class(name)(opts)
