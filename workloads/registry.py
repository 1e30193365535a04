"""Workloads are found through the ``harness.workloads`` entry point group, as backends are
through ``harness.backends``, so a package can ship its own:
``[project.entry-points."harness.workloads"] mywork = "pkg.mod:MyWorkload"``."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from backends.errors import LockHarnessError

from .base import Workload

GROUP = "harness.workloads"


class UnknownWorkload(LockHarnessError, ValueError):
    pass


def names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def workload_class(name: str) -> type[Workload]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise UnknownWorkload(f"unknown workload {name!r}; valid: {', '.join(names())}")


def make(name: str, opts: Mapping[str, Any] | None = None) -> Workload:
    """The workload with its options parsed and validated (ValueError, one line)."""
    return workload_class(name)(opts)
