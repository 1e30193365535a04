"""Servers keep every acknowledged write across a process kill unless a backend option says
otherwise, and then the run says so; runs leave no server data or shared-memory files behind.

Real servers throughout. The store is not under pytest's tmp_path: PostgreSQL runs as the
postgres user, which must traverse every ancestor (see test_backend_faults.py).
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from pathlib import Path

import pytest

from checkers.history import read
from harness.run import RunResult, run_test
from harness.run.config import run_config
from harness.runtime import LocalRuntime
from harness.runtime.durability import NOTICE
from harness.runtime.kinds import server_kind

from .conftest import harness, need_server


def _run(store: Path, **kw) -> RunResult:
    base = dict(concurrency=3, keys=1, store=store, seed=3, render_report=False)
    return run_test(run_config(**(base | kw)))


def _config(res: RunResult) -> dict:
    return json.loads((res.run_dir / "config.json").read_text())


def _kills(res: RunResult) -> int:
    ops = read(res.run_dir / "history.jsonl").ops
    return sum(o.process == "nemesis" and o.f == "start-kill" and o.type == "info" for o in ops)


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# -- PostgreSQL: a killed server keeps every acknowledged commit ---------------------------------


def test_postgres_lease_under_kill_keeps_its_fence_sequence(store: Path) -> None:
    """With synchronous_commit=off a kill lost acknowledged commits: the sequence restarted
    below fences already handed out (1527 -> 1519 in a 10 s compare run) and the fencing
    checker blamed the lease lock. Three short runs, several kills each: no regression."""
    need_server("postgres")
    kills = 0
    for seed in (1, 2, 3):
        res = _run(
            store,
            backend="postgres-lease",
            seed=seed,
            time_limit=4,
            nemesis=["kill"],
            nemesis_interval=0.7,
            nemesis_opts={"down_ms": "150"},
            ttl_ms=1000,
            hold_ms=5,
        )
        fencing = res.results["checkers"]["fencing"]
        assert fencing["fenced_holds"] >= 5, fencing["summary"]
        assert fencing["non_increasing"] == 0, fencing["non_increasing_examples"]
        assert fencing["valid"] is True, fencing["summary"]
        config = _config(res)
        assert config["non_durable"] == []
        assert [s["durability"] for s in config["servers"]] == ["synchronous_commit=on, fsync=off"]
        kills += _kills(res)
    assert kills >= 6  # the servers really were killed, several times a run


def test_postgres_async_failover_is_named_non_durable() -> None:
    need = server_kind("postgres", {"failover": True, "sync": "off"}).durability()
    assert need.notice("postgres").startswith(NOTICE + "postgres ")
    assert "asynchronous replication" in need.notice("postgres")
    assert (
        server_kind("postgres", {"failover": True, "sync": "on"}).durability().notice("x") is None
    )


def test_postgres_synchronous_commit_off_is_a_named_backend_option(tmp_path: Path) -> None:
    from backends import registry
    from harness.runtime import Node

    need_server("postgres")
    assert registry.make("postgres-lease").servers().options == {}  # durable by default
    need = registry.make("postgres-lease", {"synchronous_commit": "off"}).servers()
    kind = server_kind(need.kind, need.options)
    assert "synchronous_commit=off" in kind.command(Node("n1", "127.0.0.1", 5432, tmp_path), [])
    notice = kind.durability().notice("postgres")
    assert notice and notice.startswith(NOTICE + "postgres synchronous_commit=off")


# -- Redis: persistence is the backend's visible choice -----------------------------------------


def test_redis_default_persistence_keeps_the_fence_counter_across_kills(store: Path) -> None:
    """The default (appendfsync always) survives a kill: fences keep increasing. The same run
    with persistence=off resets the counter (tests/test_findings.py)."""
    need_server("redis")
    res = _run(
        store,
        backend="redis",
        time_limit=4,
        nemesis=["kill"],
        nemesis_interval=1.0,
        nemesis_opts={"down_ms": "200"},
        ttl_ms=1000,
        hold_ms=10,
    )
    fencing = res.results["checkers"]["fencing"]
    assert _kills(res) >= 2
    assert fencing["fenced_holds"] >= 5 and fencing["non_increasing"] == 0, fencing["summary"]
    config = _config(res)
    assert config["non_durable"] == []
    assert config["backend_opts"] == {}
    assert config["servers"][0]["durability"].startswith("persistence=always")


@pytest.mark.parametrize(
    ("persistence", "durable"), [("off", False), ("everysec", False), ("always", True)]
)
def test_each_redis_persistence_is_shown(persistence: str, durable: bool) -> None:
    d = server_kind("redis", {"persistence": persistence}).durability()
    assert d.settings.startswith(f"persistence={persistence} ")
    assert (d.notice("redis") is None) is durable


def test_non_durable_option_is_named_in_config_summary_and_report(store: Path) -> None:
    need_server("redis")
    done = harness(
        "run", "--backend", "redis", "--opt", "persistence=off", "-t", "1", "-c", "2",
        "--store", str(store),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    line = f"{NOTICE}redis persistence=off (no append-only file, no snapshots): "
    shown = [ln for ln in done.stdout.splitlines() if ln.startswith(line)]
    assert len(shown) == 1, done.stdout
    run_dir = Path(re.search(r"^run:\s+(\S+)", done.stdout, re.M).group(1))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["non_durable"] == [shown[0]]
    assert shown[0] in (run_dir / "report.html").read_text()
    # And a durable run says nothing of the kind.
    quiet = harness("run", "--backend", "redis", "-t", "1", "-c", "2", "--store", str(store))
    assert quiet.returncode == 0 and NOTICE not in quiet.stdout, quiet.stdout


# -- What servers leave outside their run directory ---------------------------------------------


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_postgres_keeps_its_shared_memory_in_its_data_dir() -> None:
    """PostgreSQL's dynamic shared memory lived in /dev/shm/PostgreSQL.*, left behind whenever
    the server was killed. Now it lives in the data dir and goes with it."""
    need_server("postgres")
    with tempfile.TemporaryDirectory(prefix="lockharness-durable-") as d:
        os.chmod(d, 0o755)
        with LocalRuntime(Path(d), keep_data=False) as rt:
            node = rt.start("postgres", 1).nodes[0]
            maps = _maps(node.pid)
            assert "/dev/shm/PostgreSQL." not in maps
            assert str(node.data_dir / "pg_dynshmem") in maps
            rt.clusters[0].kill_node(node)
        assert not node.data_dir.exists()  # and with it the segments


def test_zookeeper_leaves_no_hsperfdata(tmp_path: Path) -> None:
    """A JVM keeps /tmp/hsperfdata_<user>/<pid> while it runs and leaves it when killed."""
    need_server("zookeeper")
    with LocalRuntime(tmp_path) as rt:
        node = rt.start("zookeeper", 1).nodes[0]
        assert glob.glob(f"/tmp/hsperfdata_*/{node.pid}") == []
        assert "hsperfdata" not in _maps(node.pid)


# -- Server data is removed after the run -------------------------------------------------------


def test_etcd_run_keeps_no_member_data(store: Path) -> None:
    """An etcd run kept ~385 MB of member data (3 x 123 MB, mostly preallocated WAL)."""
    need_server("etcd")
    res = _run(store, backend="etcd", time_limit=2)
    assert res.valid is True, res.results["summary"]
    servers = res.run_dir / "servers"
    assert sorted(p.name for p in servers.iterdir()) == ["etcd-n1", "etcd-n2", "etcd-n3"]
    assert not list(servers.glob("*/data"))
    assert all((d / "server.log").exists() for d in servers.iterdir())  # logs are kept
    assert _config(res)["keep_data"] is False
    size = _tree_bytes(res.run_dir)
    assert size < 2_000_000, size  # history + logs of a 2 s run


def test_keep_data_keeps_it(store: Path) -> None:
    need_server("redis")
    res = _run(store, backend="redis", time_limit=1, keep_data=True)
    assert _config(res)["keep_data"] is True
    aof = list((res.run_dir / "servers" / "redis-n1" / "data").rglob("*.aof"))
    assert aof and any(p.stat().st_size > 0 for p in aof)


def test_keep_data_is_a_run_option() -> None:
    assert "--keep-data" in harness("run", "--help").stdout
