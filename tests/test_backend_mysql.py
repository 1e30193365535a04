"""The mysql-lease backend (ShedLock's table) on a real MariaDB, and the MariaDB server kind:
the contract, durability across a server kill, and the faults that do and do not break it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from backends.base import Endpoint, LockClient, LockFailed, NotAcquired, NotOwner
from backends.mysql_lease import MysqlLeaseBackend
from harness.runtime import LocalRuntime, MissingBinary
from harness.runtime.mariadb import DATABASE, USER, MariadbServer, query

from .backend_contract import (
    check_double_release,
    check_expiry,
    check_fences_increase,
    check_mutual_exclusion,
    check_renew,
    check_short_run,
    check_teardown,
    endpoints,
    fresh_key,
    make_clients,
)
from .test_backend_faults import _kinds, _nemesis, _run  # the store fixture: conftest's

try:
    MariadbServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("maria"))
    try:
        rt.start("mariadb", 1)
        MysqlLeaseBackend().setup(endpoints(rt.clusters[0]))
        yield rt
    finally:
        rt.close()


@pytest.fixture
def eps(runtime: LocalRuntime) -> list[Endpoint]:
    return endpoints(runtime.clusters[0])


@pytest.fixture
def clients(eps: list[Endpoint]) -> Iterator[list[LockClient]]:
    cs = make_clients(MysqlLeaseBackend(), eps, 3)
    yield cs
    for c in cs:
        c.close()


def test_server_settings_are_durable(eps: list[Endpoint]) -> None:
    ep = eps[0]
    assert query(ep.host, ep.port, "SELECT @@innodb_flush_log_at_trx_commit") == 1
    assert query(ep.host, ep.port, "SELECT @@log_bin") == 0  # no binlog: no sync_binlog needed
    assert query(ep.host, ep.port, "SELECT @@innodb_doublewrite") == 1


def test_mutual_exclusion(clients: list[LockClient]) -> None:
    check_mutual_exclusion(clients[0], clients[1])


def test_fences_increase(clients: list[LockClient]) -> None:
    check_fences_increase(clients[0], clients[1])


def test_double_release_is_not_owner(clients: list[LockClient]) -> None:
    check_double_release(clients[0])


def test_zero_wait(clients: list[LockClient]) -> None:
    a, b = clients[0], clients[1]
    key = fresh_key()
    la = a.acquire(key, 10_000, 0)
    with pytest.raises(NotAcquired):
        b.acquire(key, 10_000, 0)
    a.release(la)


def test_expiry(clients: list[LockClient]) -> None:
    check_expiry(clients[0], clients[2], ttl_ms=500, wait_ms=3000)


def test_renew(clients: list[LockClient]) -> None:
    check_renew(clients[0], clients[1], ttl_ms=600, span_s=1.2)


def test_shedlock_unlock_frees_the_successor(eps: list[Endpoint]) -> None:
    """ShedLock's own unlock has no owner condition: a holder whose lease ran out "releases"
    without complaint and ends its successor's lease, so a third client gets the lock while
    the successor still holds it. The default release refuses (NotOwner) and frees nothing."""
    for shedlock, late_release_ok in (("true", True), ("false", False)):
        a, b, c = make_clients(MysqlLeaseBackend({"shedlock_unlock": shedlock}), eps, 3)
        try:
            key = fresh_key()
            la = a.acquire(key, ttl_ms=300, wait_ms=1000)
            lb = b.acquire(key, ttl_ms=10_000, wait_ms=3000)  # after a's lease ran out
            if late_release_ok:
                a.release(la)
                lc = c.acquire(key, ttl_ms=10_000, wait_ms=0)  # b still believes it holds
                assert lc.fence > lb.fence
            else:
                with pytest.raises(NotOwner):
                    a.release(la)
                with pytest.raises(NotAcquired):
                    c.acquire(key, ttl_ms=10_000, wait_ms=0)
                b.release(lb)
        finally:
            for x in (a, b, c):
                x.close()


def test_acknowledged_leases_survive_a_server_kill(runtime: LocalRuntime) -> None:
    """Every commit acknowledged before a SIGKILL is there after the restart (the redo log is
    flushed at each commit; a server that flushed once a second would lose the last ones)."""
    cluster = runtime.clusters[0]
    node = cluster.nodes[0]
    eps = endpoints(cluster)
    (a,) = make_clients(MysqlLeaseBackend(), eps, 1)
    prefix = fresh_key("dur")
    fences = {}
    try:
        for i in range(200):
            lease = a.acquire(f"{prefix}-{i}", ttl_ms=60_000, wait_ms=0)
            fences[lease.key] = lease.fence
    finally:
        a.close()
    cluster.kill_node(node)  # SIGKILL, at once after the last acknowledged commit
    cluster.start_node(node)
    cluster.wait_ready([node])
    conn = pymysql.connect(host=node.host, port=node.port, user=USER, database=DATABASE,
                           connect_timeout=3, read_timeout=5)  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM shedlock WHERE name LIKE %s", (f"{prefix}-%",))
            assert cur.fetchone()[0] == len(fences)
    finally:
        conn.close()
    (b,) = make_clients(MysqlLeaseBackend(), eps, 1)
    try:  # the leases are still held after the restart
        with pytest.raises(NotAcquired):
            b.acquire(f"{prefix}-199", ttl_ms=1000, wait_ms=0)
    finally:
        b.close()


def test_holder_releases_across_a_server_restart(runtime: LocalRuntime) -> None:
    """The lease is a row, not a session: a holder whose server was killed and is restarting
    still releases it (its dead connection is replaced, the connect retried while the server
    is down), instead of an unknown outcome that leaves the lease to run out."""
    from concurrent.futures import ThreadPoolExecutor

    cluster = runtime.clusters[0]
    node = cluster.nodes[0]
    a, b = make_clients(MysqlLeaseBackend(), endpoints(cluster), 2)
    try:
        key = fresh_key()
        la = a.acquire(key, ttl_ms=60_000, wait_ms=0)
        cluster.kill_node(node)
        # The release runs beside; the server is restarted from this (the main) thread, as the
        # nemeses do: a server dies with the thread that started it (PR_SET_PDEATHSIG).
        with ThreadPoolExecutor(1) as pool:
            released = pool.submit(a.release, la)
            time.sleep(0.3)
            cluster.start_node(node)
            cluster.wait_ready([node])
            released.result(timeout=10)  # ok: no NotOwner, no unknown outcome
        b.release(b.acquire(key, ttl_ms=1000, wait_ms=0))  # the lock is free at once
    finally:
        a.close()
        b.close()


def test_unreachable_server_fails_cleanly() -> None:
    c = MysqlLeaseBackend({"connect_timeout_s": "1"}).client([Endpoint("x", "127.0.0.1", 9)], 0)
    with pytest.raises(LockFailed):
        c.acquire(fresh_key(), 1000, 100)


def test_bad_option_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="poll_ms='fast' is not accepted"):
        MysqlLeaseBackend({"poll_ms": "fast"})


def test_short_run_is_valid(store: Path) -> None:  # noqa: F811 - a store mariadb can enter
    check_short_run(store, "mysql-lease")


def test_holder_paused_past_its_lease_is_caught(store: Path) -> None:  # noqa: F811
    """The lease runs out on the database clock while the holder is frozen; another client
    takes it over; the holder wakes, writes, and its release is refused (NotOwner)."""
    res, ops = _run(
        store, backend="mysql-lease", nemesis=["client-pause"], nemesis_interval=1.0,
        nemesis_opts={"pause_ms": "2500"}, concurrency=3, ttl_ms=1000, hold_ms=250,
        wait_ms=2000, time_limit=4.5, seed=1,
    )  # fmt: skip
    paused = _nemesis(ops, "start-client-pause")
    assert len(paused) == 1 and paused[0].value["signal"] == "SIGSTOP", paused
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    kinds = _kinds(res)
    assert sum(kinds.values()) >= 1 and set(kinds) <= {"revoked-while-held", "overlap"}, kinds
    victim, t = paused[0].value["process"], paused[0].time
    released = [
        o.type
        for o in ops
        if o.process == victim and o.f == "release" and o.type != "invoke" and o.time > t
    ]
    assert released and released[0] == "fail", released
    fencing = res.results["checkers"]["fencing"]
    assert fencing["stale_accepted"] >= 1
    assert fencing["valid"] is True and fencing["non_increasing"] == 0  # row counter fences


def test_server_kill_is_expected_safe(store: Path) -> None:  # noqa: F811
    """Expected safe: the leases are rows, durable at commit, timed by the server's clock, so
    a holder's lease runs on while the server is down and restarts. Two kills land while
    someone holds a 1.5 s hold; the run stays valid and the lock keeps working. (With the redo
    log flushed once a second instead, innodb_flush_log_at_trx_commit=0, this run finds
    overlaps and fences going backwards: grants acknowledged just before a kill are lost.)"""
    res, ops = _run(
        store, backend="mysql-lease", nemesis=["kill"], nemesis_interval=0.8,
        nemesis_opts={"down_ms": "300"}, concurrency=3, ttl_ms=5000, hold_ms=1500,
        wait_ms=2000, time_limit=4.0, seed=1,
    )  # fmt: skip
    restarts = _nemesis(ops, "stop-kill")
    assert len(_nemesis(ops, "start-kill")) >= 2, ops
    assert restarts and all(o.value["ready"] for o in restarts), restarts
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    assert res.results["checkers"]["mutex"]["hold_count"] >= 2


def test_backends_command_lists_the_new_backends() -> None:
    """`harness backends` shows each new backend with its servers, fence and availability."""
    from .conftest import harness

    p = harness("backends", env={"COLUMNS": "250"})
    assert p.returncode == 0, p.stderr
    rows = {line.split("│")[1].strip(): line for line in p.stdout.splitlines() if "│" in line}
    for name, servers, fence in (
        ("mysql-lease", "mariadb x1", "counter in the lock's row"),
        ("postgres-xact", "postgres x1", "sequence nextval in the holding"),
        ("postgres-row", "postgres x1", "sequence nextval in the holding"),
        ("zookeeper-ephemeral", "zookeeper x3", "czxid of the lock znode"),
    ):
        assert name in rows, p.stdout
        assert servers in rows[name] and fence in rows[name] and "yes" in rows[name], rows[name]


def test_teardown_leaves_no_process(runtime: LocalRuntime) -> None:
    # Last in the file: ends the module's server and checks for leftovers.
    t0 = time.monotonic()
    check_teardown(runtime)
    assert time.monotonic() - t0 < 15


def test_the_server_reports_its_version(tmp_path: Path) -> None:
    """What config.json and the comparison page show for each node (a server of its own: the
    module's is killed and restarted by the tests above)."""
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("mariadb", 1)
        got = c.kind.version(c.nodes[0]) or ""
    assert re.fullmatch(r"1\d\.\d+\.\d+-MariaDB.*", got), got
