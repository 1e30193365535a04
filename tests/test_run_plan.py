"""The run's plan: decided once (``prepare``), handed to ``run_test``, never decided again."""

from __future__ import annotations

import dataclasses

import pytest

from harness.run import RunPlan, prepare, run_test, stages
from harness.run.config import RunConfig


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
    assert dataclasses.is_dataclass(plan)
