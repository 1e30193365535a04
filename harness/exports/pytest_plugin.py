"""pytest plugin: gate a lock library's CI on the harness.

    def test_my_lock_is_safe(lock_harness):
        result = lock_harness(backend="redis", nemesis="client-pause", time_limit=20)
        assert result.valid is True, result.results["summary"]

The ``lock_harness`` fixture runs one test per call (real servers, started and torn down by the
run) and returns the ``RunResult``. Keywords are the run's fields (``harness run``'s options:
backend, workload, nemesis as a list or "a,b" text, time_limit, seed ...) and the workload's
options (ttl_ms=..., fencing=...); any other name is refused with every accepted one listed.

Where runs land: ``pytest --lock-harness-store DIR`` (or the ini option ``lock_harness_store``,
relative to the rootdir) keeps them under DIR/<test name>/, e.g. a directory a CI job uploads;
without it, under the test's tmp_path, which pytest rotates away after three sessions; ``store=``
in a call wins over both. Each run directory is also a user property of its test
(``lockharness_run``), so pytest's --junitxml names it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    where = (
        "keep the lock_harness fixture's runs under DIR/<test name>/ (e.g. a directory CI "
        "uploads); default: the test's tmp_path, rotated away by pytest"
    )
    parser.getgroup("lockharness").addoption(
        "--lock-harness-store", dest="lock_harness_store", metavar="DIR", default=None, help=where
    )
    parser.addini("lock_harness_store", where + " (relative to the rootdir)", default="")


def _store(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    config = request.config
    given = config.getoption("lock_harness_store")
    base = Path(given) if given else None
    if base is None and config.getini("lock_harness_store"):
        base = config.rootpath / config.getini("lock_harness_store")
    if base is None:
        return tmp_path / "store"
    return base / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]


def _nemeses(value: Any) -> Any:
    """ "client-pause" or "kill,pause" as harness run's --nemesis takes them ("none": none)."""
    if not isinstance(value, str):
        return value
    return [] if value.strip() in ("", "none") else [x.strip() for x in value.split(",")]


def _check_names(kwargs: dict[str, Any]) -> None:
    """Refuse a misspelt keyword, listing the run's fields and the workload's options."""
    from harness.run.config import RunConfig
    from workloads.registry import UnknownWorkload, workload_class

    run_fields = sorted(f.name for f in fields(RunConfig))
    workload = kwargs.get("workload", RunConfig.workload)
    try:
        options = sorted(workload_class(workload).options)
    except UnknownWorkload:
        return  # the run refuses it, with the list of workloads
    unknown = sorted(set(kwargs) - set(run_fields) - set(options))
    if unknown:
        raise TypeError(
            f"lock_harness() got unknown keyword {', '.join(unknown)}; accepted: the run's "
            f"fields {', '.join(run_fields)}; workload {workload}'s options {', '.join(options)}"
        )


@pytest.fixture
def lock_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    from harness.run import run_test
    from harness.run.config import run_config

    def run(**kwargs: Any):
        """Flat keywords: run fields, and the workload's options (ttl_ms=..., fencing=...)."""
        if "nemesis" in kwargs:
            kwargs["nemesis"] = _nemeses(kwargs["nemesis"])
        _check_names(kwargs)
        kwargs.setdefault("store", _store(request, tmp_path))
        result = run_test(run_config(**kwargs))
        request.node.user_properties.append(("lockharness_run", str(result.run_dir)))
        return result

    return run
