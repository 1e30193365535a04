"""The workload plug-in interface, end to end on real servers: a third-party workload with its
own data store, shared state, final read, checker map and progress count; nemeses reach its
store's nodes; options are checked before anything starts; the stages hand data over in
memory, but for the history, read back from its file."""

from __future__ import annotations

import json

import pytest

import checkers.history
import harness.run.store
from harness.run import analyse as analysis
from harness.run import run_test
from harness.run.config import run_config
from workloads import registry as workload_registry

from .conftest import harness as cli
from .conftest import pid_alive
from .plugin_workload import CounterWorkload


@pytest.fixture
def counter(monkeypatch):
    """Register the test's workload as an installed plug-in would be."""
    real = workload_registry.workload_class

    def find(name: str):
        return CounterWorkload if name == "counter" else real(name)

    monkeypatch.setattr(workload_registry, "workload_class", find)


def _forbid_reading_back(monkeypatch) -> None:
    def no(*a, **kw):
        raise AssertionError("a stage read back a file the previous stage wrote")

    # the history alone is read back from its file: a long run's never sits in memory
    monkeypatch.setattr(harness.run.store, "read_json", no)


def test_plugin_workload_with_its_own_store(redis_bin, counter, tmp_path):
    seen: list[dict] = []
    cfg = run_config(
        backend="redis", workload="counter", time_limit=3, concurrency=3, store=tmp_path,
        seed=1, slots=2,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        _forbid_reading_back(mp)
        res = run_test(cfg, seen.append)

    assert res.valid is True, res.results["summary"]
    assert set(res.results["checkers"]) == {"counter", "mutex", "fencing", "perf"}
    incs = res.results["checkers"]["counter"]["increments"]
    assert incs > 20 and res.results["checkers"]["counter"]["final"] == incs
    # the progress line counted what the workload declared
    assert seen and {p["progress_label"] for p in seen} == {"increments"}
    assert 0 < seen[-1]["progress"] <= incs
    config = json.loads((res.run_dir / "config.json").read_text())
    roles = {(s["role"], s["name"]) for s in config["servers"]}
    assert roles == {("lock", "n1"), ("store", "store1")}
    assert config["workload_opts"] == {"ttl_ms": 3000, "slots": 2, "persistence": "always"}
    assert not any(pid_alive(s["pid"]) for s in config["servers"])
    ops = checkers.history.read(res.run_dir / "history.jsonl").ops
    assert res.results["ops_read"] == len(ops)
    final = [o for o in ops if o.f == "final-read"]
    clients = {o.process for o in ops if o.f == "increment"}
    assert [o.type for o in final] == ["invoke", "ok"]
    assert final[0].process not in clients  # a process id no client used
    assert final[0].time > max(o.time for o in ops if o.f == "increment")
    # shared state made before the fork: both slots written by workers, seen by the harness
    assert [o.value for o in ops if o.f == "slots-seen" and o.type == "ok"] == [2]
    # harness check judges the stored run by the same workload, from config.json
    assert analysis.recheck(res.run_dir, render=False)["valid"] is True


def test_plugin_records_its_lock_ops_and_keeps_the_pace(redis_bin, counter, tmp_path):
    """The example's clients record acquire and release through ``ctx.call`` (each increment
    inside a recorded hold, judged by the mutex checker) and loop on ``ctx.turns()``: --rate
    paces them, where a loop of its own would run flat out."""
    cfg = run_config(
        backend="redis", workload="counter", time_limit=2, concurrency=2, store=tmp_path,
        seed=3, rate=10,
    )  # fmt: skip
    res = run_test(cfg)
    assert res.valid is True, res.results["summary"]
    assert res.results["checkers"]["mutex"]["valid"] is True
    ops = checkers.history.read(res.run_dir / "history.jsonl").ops
    acquires = [o for o in ops if o.f == "acquire" and o.type == "invoke"]
    assert 5 <= len(acquires) <= 35, len(acquires)  # 10 turns/s for 2 s, jittered
    held: dict[int, bool] = {}
    for o in sorted(ops, key=lambda o: o.index):
        if o.f == "acquire" and o.type == "ok":
            held[o.process] = True
        elif o.f == "release" and o.type == "invoke":
            held[o.process] = False
        elif o.f == "increment" and o.type == "invoke":
            assert held.get(o.process), o
    assert sum(o.f == "increment" and o.type == "ok" for o in ops) > 0


def test_nemesis_kills_a_node_of_the_workload_store(redis_bin, counter, tmp_path):
    """The kill nemesis targets the store's node by name; the store, asked to run without
    persistence, restarts empty, the run names that setting as non-durable, and the workload's
    own checker sees the lost increments."""
    cfg = run_config(
        backend="redis", workload="counter", time_limit=3.5, concurrency=3, store=tmp_path,
        seed=2, nemesis=["kill"], nemesis_interval=1.0, persistence="off",
        nemesis_opts={"target": "store1", "down_ms": "300"},
    )  # fmt: skip
    res = run_test(cfg)
    ops = checkers.history.read(res.run_dir / "history.jsonl").ops
    kills = [o.value for o in ops if o.f == "start-kill" and o.type == "info"]
    assert kills and {k["node"] for k in kills} == {"store1"}
    assert res.valid is False, res.results["summary"]
    c = res.results["checkers"]["counter"]
    assert c["valid"] is False and c["final"] < c["increments"]
    assert any("redis persistence=off" in n for n in res.config["non_durable"])


def test_workload_options_are_checked_before_anything_starts(tmp_path):
    store = tmp_path / "store"
    for args, said in [
        (["--workload-opt", "ttl_ms=0"], "(--ttl): option ttl_ms='0' is not accepted"),
        (["--ttl", "0"], "(--ttl): option ttl_ms=0 is not accepted: give an integer from 1 to"),
        (["--workload-opt", "bogus=1"], "workload 'mutex' has no option bogus; accepted:"),
        (["--workload-opt", "fencing=maybe"], "give true or false"),
        (["--workload", "nope"], "unknown workload 'nope'; valid: jobs, lock-set, mutex"),
        (["--workload-opt", "novalue"], "--workload-opt takes NAME=VALUE"),
    ]:
        r = cli("run", "-b", "redis", "-t", "1", "--store", str(store), *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not store.exists()  # nothing started, nothing stored


def test_harness_workloads_lists_each_workload_with_its_options():
    r = cli("workloads")
    assert r.returncode == 0, r.stderr
    for word in ("mutex", "ttl_ms", "--ttl", "fencing", "check_before_write", "3000"):
        assert word in r.stdout, word
