"""The zookeeper-ephemeral backend (one plain ephemeral znode per key) on a real 3-node
ZooKeeper ensemble: the contract, and a holder frozen past its session timeout breaking it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.base import Endpoint, LockClient, LockFailed, NotAcquired, NotOwner
from backends.zookeeper_ephemeral import EphemeralLockClient, ZooKeeperEphemeralBackend
from harness.net.proxies import CUT, ProxyLinks
from harness.runtime import LocalRuntime, MissingBinary
from harness.runtime.base import wait_until
from harness.runtime.toxiproxy_kind import url
from harness.runtime.zookeeper import ZooKeeperServer
from harness.toxiproxy.client import ToxiproxyClient

from .backend_contract import (
    check_double_release,
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
    ZooKeeperServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("zke"))
    try:
        rt.start("zookeeper", 3)
        yield rt
    finally:
        rt.close()


@pytest.fixture
def eps(runtime: LocalRuntime) -> list[Endpoint]:
    return endpoints(runtime.clusters[0])


@pytest.fixture
def clients(eps: list[Endpoint]) -> Iterator[list[LockClient]]:
    cs = make_clients(ZooKeeperEphemeralBackend(), eps, 3)
    yield cs
    for c in cs:
        c.close()


def test_mutual_exclusion(clients: list[LockClient]) -> None:
    check_mutual_exclusion(clients[0], clients[1])


def test_fences_increase(clients: list[LockClient]) -> None:
    check_fences_increase(clients[0], clients[1])


def test_double_release_is_not_owner(clients: list[LockClient]) -> None:
    check_double_release(clients[0])


def test_renew_keeps_the_lock(clients: list[LockClient]) -> None:
    check_renew(clients[0], clients[1], ttl_ms=900, span_s=1.2)


def test_release_by_another_client_is_not_owner(clients: list[LockClient]) -> None:
    a, b = clients[0], clients[1]
    la = a.acquire(fresh_key(), 10_000, 1000)
    with pytest.raises(NotOwner):  # b's session does not own the node: nothing is deleted
        b.release(la)
    a.release(la)


def test_session_expiry_loses_the_lock(clients: list[LockClient], eps: list[Endpoint]) -> None:
    """The node dies with the session: a waiter creates it, and the old holder's renew and
    release say it is not the owner, and do not delete the successor's node."""
    from .test_backend_zookeeper import _expire_session

    a, c = clients[0], clients[2]
    assert isinstance(a, EphemeralLockClient)
    key = fresh_key()
    la = a.acquire(key, 10_000, 1000)
    _expire_session(a, eps)  # type: ignore[arg-type] - it reads only .session
    lc = c.acquire(key, 10_000, 5000)
    assert lc.fence > la.fence
    # kazoo learns of the expiry when it reconnects, then opens a fresh session.
    assert wait_until(lambda: a.zk.connected and a.session[0] != la.data["owner"], 10)
    with pytest.raises(NotOwner):
        a.renew(la, 10_000)
    with pytest.raises(NotOwner):
        a.release(la)
    c.renew(lc, 10_000)  # c's node is untouched
    with pytest.raises(NotAcquired):
        a.acquire(key, 10_000, 200)
    c.release(lc)


def test_release_while_reconnecting_is_unknown_not_refused(
    runtime: LocalRuntime, eps: list[Endpoint]
) -> None:
    """Cut off from every node, kazoo drops its connection and has no session id until it is
    back; the node is still this session's on the server. A release then is an unknown outcome
    (never NotOwner, which left the node behind and made a waiter's later grant look early in
    the comparison's kill cells); once the links heal, the same release deletes the node."""
    px = ToxiproxyClient(url(runtime.start("toxiproxy", 1, own_uids=False).nodes[0]))
    links = ProxyLinks(px, runtime.clusters[0].nodes, groups=1)
    backend = ZooKeeperEphemeralBackend({"session_timeout_ms": "10000", "op_timeout_ms": "500"})
    a = backend.client(links.endpoints(0), 0)
    b = backend.client(eps, 1)
    try:
        assert isinstance(a, EphemeralLockClient)
        key = fresh_key()
        lease = a.acquire(key, 10_000, 1000)
        for n in runtime.clusters[0].nodes:
            links.cut(0, n)
        assert wait_until(lambda: a.zk.client_id is None, 15), "kazoo never noticed the cut"
        with pytest.raises(Exception) as got:
            a.release(lease)
        assert not isinstance(got.value, LockFailed), got.value  # unknown, not refused
        links.remove_all(CUT)
        assert wait_until(lambda: a.zk.connected, 15)
        assert a.session[0] == lease.data["owner"]  # the same session: the node was ours
        a.release(lease)
        b.release(b.acquire(key, 10_000, 0))  # deleted: free at once
    finally:
        a.close()
        b.close()
        links.close()


def test_unreachable_ensemble_fails_cleanly() -> None:
    c = ZooKeeperEphemeralBackend({"connect_timeout_ms": "300"}).client(
        [Endpoint("x", "127.0.0.1", 9)], 0
    )
    try:
        with pytest.raises(LockFailed):
            c.acquire(fresh_key(), 1000, 100)
    finally:
        c.close()


def test_bad_option_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="poll_ms='often' is not accepted"):
        ZooKeeperEphemeralBackend({"poll_ms": "often"})


def test_short_run_is_valid(tmp_path: Path) -> None:
    check_short_run(tmp_path, "zookeeper-ephemeral")


def test_holder_paused_past_its_session(store: Path) -> None:  # noqa: F811
    """kazoo's heartbeat thread is frozen with the holder, so its session expires and the node
    goes with it; a waiter's create succeeds; the holder wakes and writes (a stale write), and
    its release does not succeed: the node is gone or belongs to another session."""
    res, ops = _run(
        store, backend="zookeeper-ephemeral", backend_opts={"session_timeout_ms": "1000"},
        nemesis=["client-pause"], nemesis_interval=1.0, nemesis_opts={"pause_ms": "3000"},
        concurrency=3, ttl_ms=1000, hold_ms=500, wait_ms=1500, time_limit=5.0, seed=1,
    )  # fmt: skip
    paused = _nemesis(ops, "start-client-pause")
    assert len(paused) == 1 and paused[0].value["signal"] == "SIGSTOP", paused
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    kinds = _kinds(res)
    assert sum(kinds.values()) >= 1 and set(kinds) <= {"overlap", "revoked-while-held"}, kinds
    victim, t = paused[0].value["process"], paused[0].time
    released = [
        o.type
        for o in ops
        if o.process == victim and o.f == "release" and o.type != "invoke" and o.time > t
    ]
    assert released and released[0] != "ok", released
    fencing = res.results["checkers"]["fencing"]
    assert fencing["stale_accepted"] >= 1
    assert fencing["valid"] is True and fencing["non_increasing"] == 0  # czxid fences work


def test_teardown_leaves_no_process(runtime: LocalRuntime) -> None:
    # Last in the file: ends the module's ensemble and checks that nothing of it is left.
    check_teardown(runtime)
