"""The ZooKeeper backend (kazoo Lock recipe) against a real 3-node ZooKeeper ensemble."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from backends.base import Endpoint, LockFailed, NotAcquired, NotOwner
from backends.zookeeper import ZooKeeperBackend, ZooKeeperLockClient
from harness.runtime import LocalRuntime, MissingBinary
from harness.runtime.zookeeper import ZooKeeperServer

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

try:
    ZooKeeperServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("zk"))
    try:
        rt.start("zookeeper", 3)
        yield rt
    finally:
        rt.close()


@pytest.fixture
def eps(runtime: LocalRuntime) -> list[Endpoint]:
    return endpoints(runtime.clusters[0])


def _clients(eps: list[Endpoint], n: int, **opts: str) -> list[ZooKeeperLockClient]:
    return make_clients(ZooKeeperBackend(opts), eps, n)  # type: ignore[return-value]


@pytest.fixture
def clients(eps: list[Endpoint]) -> Iterator[list[ZooKeeperLockClient]]:
    cs = _clients(eps, 3)
    yield cs
    for c in cs:
        c.close()


def _expire_session(c: ZooKeeperLockClient, eps: list[Endpoint]) -> None:
    """Expire ``c``'s session as ZooKeeper's own tests do: a second connection with the same
    session id and password closes it; the server then expires it for the original too."""
    hosts = ",".join(f"{e.host}:{e.port}" for e in eps)
    twin = KazooClient(hosts=hosts, client_id=c.session, timeout=3.0)
    twin.start(timeout=5)
    twin.stop()
    twin.close()


def test_mutual_exclusion(clients: list[ZooKeeperLockClient]) -> None:
    check_mutual_exclusion(clients[0], clients[1])


def test_fences_increase(clients: list[ZooKeeperLockClient]) -> None:
    check_fences_increase(clients[0], clients[1])


def test_double_release_is_not_owner(clients: list[ZooKeeperLockClient]) -> None:
    check_double_release(clients[0])


def test_renew_keeps_the_lock(clients: list[ZooKeeperLockClient]) -> None:
    check_renew(clients[0], clients[1], ttl_ms=1500, span_s=2.0)


def test_session_expiry_loses_the_lock(
    clients: list[ZooKeeperLockClient], eps: list[Endpoint]
) -> None:
    a, c = clients[0], clients[2]
    key = fresh_key()
    la = a.acquire(key, 10_000, 1000)
    _expire_session(a, eps)
    lc = c.acquire(key, 10_000, 5000)  # the ephemeral node died with the session
    assert lc.fence > la.fence
    with pytest.raises(NotOwner):
        a.renew(la, 10_000)
    with pytest.raises(NotOwner):
        a.release(la)
    c.release(lc)
    # kazoo opens a fresh session after the loss: the client works again (once connected).
    from harness.runtime.base import wait_until

    assert wait_until(lambda: a.zk.connected, 10)
    lease = a.acquire(key, 10_000, 5000)
    a.release(lease)


def test_ignoring_connection_state_trusts_a_lost_lock(eps: list[Endpoint]) -> None:
    a, c = _clients(eps, 2, ignore_connection_state="true")
    try:
        key = fresh_key()
        la = a.acquire(key, 10_000, 1000)
        _expire_session(a, eps)
        lc = c.acquire(key, 10_000, 5000)
        # The naive client still believes it holds the lock: renew and release "succeed"
        # while c holds it. This is the hazard the connection listener exists for.
        a.renew(la, 10_000)
        a.release(la)
        with pytest.raises(NotAcquired):
            a.acquire(key, 10_000, 200)
        c.release(lc)
    finally:
        a.close()
        c.close()


def test_unreachable_ensemble_fails_cleanly() -> None:
    c = ZooKeeperBackend({"connect_timeout_ms": "300"}).client([Endpoint("x", "127.0.0.1", 9)], 0)
    try:
        with pytest.raises(LockFailed):
            c.acquire(fresh_key(), 1000, 100)
    finally:
        c.close()


def test_bad_option_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="ignore_connection_state='maybe' is not accepted"):
        ZooKeeperBackend({"ignore_connection_state": "maybe"})


def test_short_run_is_valid(tmp_path) -> None:
    check_short_run(tmp_path, "zookeeper")


def test_teardown_leaves_no_process(runtime: LocalRuntime) -> None:
    # Last in the file: ends the module's ensemble and checks that nothing of it is left.
    t0 = time.monotonic()
    check_teardown(runtime)
    assert time.monotonic() - t0 < 15


def test_every_node_reports_its_version(tmp_path: Path) -> None:
    """From ``srvr`` (Debian's build leaves the commit a placeholder, which is cut off); a
    server of its own: the module's nodes are killed and partitioned by the tests above."""
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("zookeeper", 1)
        got = c.kind.version(c.nodes[0]) or ""
    assert re.fullmatch(r"3\.\d+\.\d+", got), got
