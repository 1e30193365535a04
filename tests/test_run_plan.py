"""The run's plan: decided once (``prepare``), handed to ``run_test``, never decided again."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.run import RunPlan, prepare, run_test, stages
from harness.run.config import RunConfig
from harness.run.workers import pool_size


def test_a_prepared_plan_is_not_prepared_again(redis_bin, tmp_path, monkeypatch) -> None:
    cfg = RunConfig(backend="redis", time_limit=1, concurrency=2, store=tmp_path, seed=3)
    plan = prepare(cfg)

    def again(cfg: RunConfig) -> RunPlan:
        raise AssertionError("prepare ran a second time")

    monkeypatch.setattr(stages, "prepare", again)
    res = run_test(cfg, plan=plan)
    assert res.valid is True, res.results["summary"]


def test_a_plan_belongs_to_its_configuration(tmp_path) -> None:
    plan = prepare(RunConfig(backend="redis", store=tmp_path))
    with pytest.raises(ValueError, match="another configuration"):
        run_test(RunConfig(backend="redis", store=tmp_path), plan=plan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.use_ns = not plan.use_ns  # type: ignore[misc]


# config.json's keys, in order, as stored runs have them (read by reports, campaigns, `check`).
CONFIG_KEYS = [
    *("backend", "workload", "workload_opts", "nemesis", "nemesis_interval", "nemesis_opts"),
    *("concurrency", "keys", "time_limit", "ops", "rate", "seed", "backend_opts", "store"),
    *("toxiproxy", "netns", "client_groups", "render_report", "keep_data", "runtime", "images"),
    *("docker_host", "docker_netns", "compose_project", "model", "schedule", "backoff_ms"),
    "started_at",
    *("harness_version", "backend_fence", "lock", "non_durable", "servers", "worker_pids"),
    "clients_as",
    *("recovery_s", "duration_s", "machine", "interrupted"),
]


def test_config_json_keeps_its_keys_and_is_what_the_run_returns(redis_bin, tmp_path) -> None:
    cfg = RunConfig(
        backend="redis",
        nemesis=["kill"],
        nemesis_interval=1,
        time_limit=3,
        store=tmp_path,
        seed=5,
        render_report=False,
    )
    res = run_test(cfg)
    stored = json.loads((res.run_dir / "config.json").read_text())
    assert list(stored) == CONFIG_KEYS
    assert stored == res.config
    assert len(stored["worker_pids"]) == pool_size(cfg.concurrency)  # pooled clients' workers
    assert stored["interrupted"] is False and stored["netns"] in (True, False)
