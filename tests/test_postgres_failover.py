"""PostgreSQL failover mode on real servers: a primary, a streaming replica, promotion by the kill
nemesis, and what a lease table loses when the replica is asynchronous."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from backends.base import Endpoint, NotAcquired
from backends.postgres_lease import TABLE, PostgresLeaseBackend, PostgresLeaseClient
from harness.runtime import Cluster, LocalRuntime, MissingBinary, Node
from harness.runtime.postgres import PostgresServer

from .backend_contract import endpoints, fresh_key, leftover_processes

try:
    PostgresServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)


def query(node: Node, sql: str, params: tuple = ()) -> object:
    with psycopg.connect(
        host=node.host, port=node.port, user="postgres", autocommit=True, connect_timeout=3
    ) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def wait_caught_up(cluster: Cluster, timeout: float = 10.0) -> None:
    """Every replica has replayed all WAL the primary has written (so a test starts clean)."""
    primary = cluster.node(cluster.kind.primary)
    deadline = time.monotonic() + timeout
    sql = (
        "SELECT count(*) > 0 AND bool_and(replay_lsn >= pg_current_wal_insert_lsn())"
        " FROM pg_stat_replication"
    )
    while not query(primary, sql):
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.02)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path)
    try:
        yield rt
    finally:
        pids = [n.pid for c in rt.clusters for n in c.nodes if n.pid is not None]
        rt.close()
        assert leftover_processes(pids) == []


def start(rt: LocalRuntime, synchronous: bool) -> tuple[Cluster, PostgresLeaseBackend]:
    backend = PostgresLeaseBackend({"failover": "true", "synchronous": str(synchronous)})
    need = backend.servers()
    cluster = rt.start(need.kind, need.nodes, need.options)
    backend.setup(endpoints(cluster))
    wait_caught_up(cluster)
    return cluster, backend


def lease_row(node: Node, key: str) -> object:
    return query(node, f"SELECT locked_by FROM {TABLE} WHERE name = %s", (key,))


def test_options_ask_for_a_primary_and_a_replica() -> None:
    need = PostgresLeaseBackend({"failover": "true", "synchronous": "true"}).servers()
    assert (need.kind, need.nodes, need.options) == (
        "postgres",
        2,
        {"failover": True, "sync": "on"},
    )
    assert PostgresLeaseBackend().servers().nodes == 1
    with pytest.raises(ValueError, match="synchronous=true needs failover=true"):
        PostgresLeaseBackend({"synchronous": "true"})


def test_cluster_comes_up_with_a_streaming_replica(runtime: LocalRuntime) -> None:
    cluster, _ = start(runtime, synchronous=False)
    n1, n2 = cluster.nodes
    assert query(n1, "SELECT pg_is_in_recovery()") is False
    assert query(n2, "SELECT pg_is_in_recovery()") is True
    assert query(n1, "SELECT state FROM pg_stat_replication WHERE application_name = 'n2'") == (
        "streaming"
    )
    with psycopg.connect(host=n1.host, port=n1.port, user="postgres", autocommit=True) as conn:
        conn.execute("CREATE TABLE seen AS SELECT 7 AS x")
    wait_caught_up(cluster)
    assert query(n2, "SELECT x FROM seen") == 7
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        query(n2, "INSERT INTO seen VALUES (8)")


def test_killing_the_primary_promotes_the_replica_and_clients_follow(
    runtime: LocalRuntime,
) -> None:
    cluster, backend = start(runtime, synchronous=False)
    kind = cluster.kind
    n1, n2 = cluster.nodes
    client = backend.client(endpoints(cluster), 0)
    try:
        client.release(client.acquire(fresh_key(), 5000, 0))
        assert kind.after_kill(n2, cluster.nodes) is None  # n2 is a replica: nothing to do
        cluster.kill_node(n1)
        then = kind.after_kill(n1, cluster.nodes)
        assert then is not None and then["promoted"] == "n2", then
        assert query(n2, "SELECT pg_is_in_recovery()") is False
        # The same client finds the new primary by itself (multi-host, read-write).
        client.release(client.acquire(fresh_key(), 5000, 0))
        # The former primary comes back as a replica of the new one (re-cloned).
        cluster.start_node(n1)
        cluster.wait_ready([n1])
        assert query(n1, "SELECT pg_is_in_recovery()") is True
        assert kind.cluster_ready(cluster.nodes)
        # And back again: kill n2, n1 is promoted, the client follows.
        cluster.kill_node(n2)
        again = kind.after_kill(n2, cluster.nodes)
        assert again is not None and again["promoted"] == "n1", again
        client.release(client.acquire(fresh_key(), 5000, 0))
        print(f"promote_ms: {then['promote_ms']}, {again['promote_ms']}")
    finally:
        client.close()


def kill_right_after_acquire(cluster: Cluster, backend: PostgresLeaseBackend) -> tuple[str, bool]:
    """Take a lease, SIGKILL the primary at once, promote: is the lease row on the new primary?"""
    wait_caught_up(cluster)
    eps: list[Endpoint] = endpoints(cluster)
    holder = backend.client(eps, 0)
    try:
        key = fresh_key()
        holder.acquire(key, 30_000, 0)
        old = cluster.node(cluster.kind.primary)
        cluster.kill_node(old)
        then = cluster.kind.after_kill(old, cluster.nodes)
    finally:
        holder.close()
    assert then is not None and then["promoted"] is not None, then
    kept = lease_row(cluster.node(then["promoted"]), key) is not None
    cluster.start_node(old)  # back as a replica, so a synchronous primary can commit again
    cluster.wait_ready([old])
    return key, kept


def test_async_replica_can_lose_a_lease_taken_just_before_the_kill(
    runtime: LocalRuntime,
) -> None:
    cluster, backend = start(runtime, synchronous=False)
    lost = 0
    for _ in range(3):
        key, kept = kill_right_after_acquire(cluster, backend)
        other = backend.client(endpoints(cluster), 1)
        assert isinstance(other, PostgresLeaseClient)
        try:
            if kept:  # the lease survived: still held
                with pytest.raises(NotAcquired):
                    other.acquire(key, 30_000, 0)
            else:  # lost: a second client takes a lease the first still believes it holds
                other.release(other.acquire(key, 30_000, 0))
                lost += 1
        finally:
            other.close()
    print(f"async: {lost} of 3 leases taken right before the kill were lost")


def test_synchronous_replica_keeps_a_lease_taken_just_before_the_kill(
    runtime: LocalRuntime,
) -> None:
    cluster, backend = start(runtime, synchronous=True)
    for _ in range(2):
        key, kept = kill_right_after_acquire(cluster, backend)
        assert kept, "an acknowledged lease was lost with synchronous replication"
        other = backend.client(endpoints(cluster), 1)
        try:
            with pytest.raises(NotAcquired):
                other.acquire(key, 30_000, 0)
        finally:
            other.close()


def run_with_failover(store: Path, synchronous: bool) -> tuple[object, list[dict], int]:
    """A short mutex run, the primary (n1) killed once at 3 s and restarted 0.5 s later.
    Returns the result, the history, and the leases lost before their TTL: releases refused
    ("expired or was taken over") although invoked well within the lease's TTL."""
    from harness.run import run_test
    from harness.run.config import run_config

    ttl_ms = 2000
    cfg = run_config(
        backend="postgres-lease", time_limit=6.5, concurrency=6, keys=4, hold_ms=100,
        ttl_ms=ttl_ms, wait_ms=2000, store=store, seed=1, nemesis=["kill"],
        nemesis_interval=3, nemesis_opts={"target": "n1", "down_ms": "500"},
        backend_opts={"failover": "true", "synchronous": str(synchronous).lower()},
        render_report=False,
    )  # fmt: skip
    res = run_test(cfg)
    history = [json.loads(ln) for ln in (res.run_dir / "history.jsonl").read_text().splitlines()]
    acquired: dict[object, int] = {}  # process -> time its acquire returned ok
    held_ms: dict[object, float] = {}  # process -> how long it had held when it released
    lost = 0
    for op in history:
        p = op["process"]
        if op["f"] == "acquire" and op["type"] == "ok":
            acquired[p] = op["time"]
        elif op["f"] == "release" and op["type"] == "invoke" and p in acquired:
            held_ms[p] = (op["time"] - acquired[p]) / 1e6
        elif op["f"] == "release" and op["type"] == "fail" and "taken over" in op["error"]:
            lost += held_ms.get(p, ttl_ms) < ttl_ms * 0.75
    servers = json.loads((res.run_dir / "config.json").read_text())["servers"]
    assert leftover_processes([s["pid"] for s in servers]) == []
    return res, history, lost


def failover_ops(history: list[dict]) -> list[dict]:
    return [
        op["value"]
        for op in history
        if op["process"] == "nemesis" and op["type"] != "invoke" and op.get("value")
    ]


def test_harness_run_async_failover(tmp_path: Path) -> None:
    res, history, lost = run_with_failover(tmp_path, synchronous=False)
    values = failover_ops(history)
    assert any(v.get("then", {}).get("promoted") == "n2" for v in values), values
    assert any(v.get("restarted") and v.get("ready") for v in values), values
    mutex = res.results["checkers"]["mutex"]
    assert mutex["hold_count"] > 20
    if lost:  # a refused release leaves its hold open: a later holder of the key is a violation
        assert res.valid is False, res.results["summary"]
    print(f"async run: lost={lost} valid={res.valid} kinds={mutex.get('violation_kinds')}")


def test_harness_run_synchronous_failover_keeps_leases(tmp_path: Path) -> None:
    res, history, lost = run_with_failover(tmp_path, synchronous=True)
    values = failover_ops(history)
    assert any(v.get("then", {}).get("promoted") == "n2" for v in values), values
    mutex = res.results["checkers"]["mutex"]
    assert mutex["hold_count"] > 20
    assert lost == 0
    assert res.valid is True, res.results["summary"]


def test_partition_on_the_failover_pair_cuts_client_links_and_says_what_it_cannot(
    tmp_path: Path,
) -> None:
    """PostgreSQL's nodes run as the postgres user, not under uids of their own, so their links
    to each other cannot be cut: a partition cuts the client links it can and names the rest;
    one that could cut nothing is "not injected" (with why), never a fault that fired, and
    never a FirewallError that leaves the run without a verdict."""
    from harness.run import run_test
    from harness.run.config import run_config

    cfg = run_config(
        backend="postgres-lease", time_limit=7, concurrency=3, keys=1, hold_ms=50,
        ttl_ms=2000, store=tmp_path, seed=3, nemesis=["partition"], nemesis_interval=1,
        backend_opts={"failover": "true"}, render_report=False,
    )  # fmt: skip
    res = run_test(cfg)
    history = [json.loads(ln) for ln in (res.run_dir / "history.jsonl").read_text().splitlines()]
    starts = [op for op in history if op["f"] == "start-partition" and op["type"] != "invoke"]
    assert starts and all(op["type"] == "info" and not op.get("error") for op in starts), starts
    values = [op["value"] for op in starts]
    assert all(v["node_cuts"] == [] for v in values), values
    assert any(v["client_cuts"] for v in values), values  # some partition fired
    for v in values:
        if v.get("not_cut"):
            assert "postgres nodes run as one system user" in v["why_not_cut"], v
        if not v["client_cuts"]:
            assert v["injected"] is False and v["why"], v
    faults = res.results["faults"]["partition"]
    assert faults["failed"] == 0 and faults["injected"] >= 1, faults
    assert faults["injected"] + faults["not_injected"] == faults["attempted"], faults
    assert res.valid is not None, res.results["summary"]  # a verdict, not UNKNOWN by failure
