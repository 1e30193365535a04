"""pytest plugin: gate a lock library's CI on the harness.

    def test_my_lock_is_safe(lock_harness):
        result = lock_harness(backend="redis", nemesis=["client-pause"], time_limit=20)
        assert result.valid is True, result.results["summary"]

The ``lock_harness`` fixture runs one test per call (real servers, started and torn down by the
run), stores it under the test's tmp_path and returns the ``RunResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def lock_harness(tmp_path) -> Callable[..., Any]:
    from harness.run import run_test
    from harness.run.config import run_config

    def run(**kwargs: Any):
        """Flat keywords: run fields, and the workload's options (ttl_ms=..., fencing=...)."""
        kwargs.setdefault("store", tmp_path / "store")
        return run_test(run_config(**kwargs))

    return run
