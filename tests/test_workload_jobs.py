"""The jobs workload (ShedLock's at-most-once scheduled work) end to end on real servers:
every slot runs once without faults; a holder frozen past its lock's TTL wakes up and, as a
fixed-rate timer does, runs the slots it missed, which others already ran: double executions."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.run import RunResult, run_test
from harness.run.config import run_config

from .conftest import harness

# Slots of 600 ms; a node keeps the lock 450 ms, so only a node stalled that long (not a busy
# test machine) could come back for a slot already run.
JOBS = dict(period_ms=600, min_hold_ms=450, skew_ms=50, duration_ms=20, ttl_ms=1000)


def _run(tmp_path: Path, backend: str, **kw) -> RunResult:
    base = dict(backend=backend, workload="jobs", store=tmp_path, seed=3, render_report=False)
    return run_test(run_config(**(base | JOBS | kw)))


def _jobs(res: RunResult) -> dict:
    return res.results["checkers"]["jobs"]


@pytest.mark.parametrize("backend", ["redis", "etcd", "zookeeper", "postgres-lease"])
def test_every_slot_runs_once_without_faults(tmp_path: Path, backend: str) -> None:
    res = _run(tmp_path, backend, time_limit=3)
    j = _jobs(res)
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    assert j["executed_slots"] >= 3 and j["double_executions"] == 0, j["summary"]
    assert j["missed_slots"] == 0, j["summary"]


def test_client_pause_runs_a_slot_twice(tmp_path: Path) -> None:
    res = _run(
        tmp_path,
        "redis",
        nemesis=["client-pause"],
        nemesis_interval=1.5,
        time_limit=6,
        period_ms=500,
        min_hold_ms=250,
        ttl_ms=400,
    )
    j = _jobs(res)
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    assert j["double_executions"] >= 1, j["summary"]
    assert (
        j["double_slots"][0]["executions"][0]["process"]
        != (j["double_slots"][0]["executions"][1]["process"])
    )


def test_lock_at_least_for_above_lock_at_most_for_is_refused(tmp_path: Path) -> None:
    r = harness(
        "run",
        "--backend",
        "redis",
        "--workload",
        "jobs",
        "--ttl",
        "100",
        "--workload-opt",
        "min_hold_ms=500",
        "--store",
        str(tmp_path),
    )
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, lines
    assert "lockAtLeastFor must not exceed lockAtMostFor" in lines[0]
    assert not any(tmp_path.iterdir())


def test_workloads_lists_lock_set_and_jobs_with_their_options() -> None:
    r = harness("workloads", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    for word in ("lock-set", "jobs", "write", "store", "period_ms", "min_hold_ms", "schedule"):
        assert word in r.stdout, word
