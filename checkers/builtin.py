"""The built-in checkers as the ``harness.checkers`` entry point group registers them
(pyproject.toml), as a third party's would be. Imported only when the group is loaded, after
the ``checkers`` package itself: no cycle."""

from __future__ import annotations

from typing import Any

from . import Checker, CheckerSpec, jobs, lock_checkers
from . import set as set_checker

LOCK_OPS = ("acquire", "release")


def _lock(name: str) -> Any:
    """The ``name`` entry of the lock checker map (mutex, fencing, perf)."""
    return lambda **kw: lock_checkers(**kw)[name]


def _set_check(**_: Any) -> Checker:
    return lambda h: set_checker.check(h.ops)


def _jobs_check(**_: Any) -> Checker:
    return lambda h: jobs.check(h.ops)


MUTEX = CheckerSpec("mutex", _lock("mutex"), LOCK_OPS, 10)
FENCING = CheckerSpec("fencing", _lock("fencing"), LOCK_OPS, 20)
PERF = CheckerSpec("perf", _lock("perf"), LOCK_OPS, 30)
SET = CheckerSpec("set", _set_check, ("add", "read"), 40)
JOBS = CheckerSpec("jobs", _jobs_check, ("exec",), 50)
