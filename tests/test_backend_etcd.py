"""The etcd backend against a real 3-node etcd cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from backends.base import Endpoint, LockClient, LockFailed, NotAcquired
from backends.etcd import EtcdBackend
from harness.runtime import LocalRuntime, MissingBinary

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

try:
    from harness.runtime.etcd import EtcdServer

    EtcdServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("etcd"))
    try:
        rt.start("etcd", 3)
        yield rt
    finally:
        rt.close()


@pytest.fixture
def clients(runtime: LocalRuntime) -> Iterator[list[LockClient]]:
    eps = endpoints(runtime.clusters[0])
    cs = make_clients(EtcdBackend(), eps, 3)
    yield cs
    for c in cs:
        c.close()


def test_mutual_exclusion(clients: list[LockClient]) -> None:
    check_mutual_exclusion(clients[0], clients[1])


def test_fences_increase(clients: list[LockClient]) -> None:
    check_fences_increase(clients[0], clients[1])


def test_double_release_is_not_owner(clients: list[LockClient]) -> None:
    check_double_release(clients[0])


def test_expired_lease_is_not_owner(clients: list[LockClient]) -> None:
    # etcd's minimum lease TTL is about 2 s with default timing: 1000 ms is raised to it.
    check_expiry(clients[0], clients[2], ttl_ms=1000, wait_ms=6000)


def test_renew_keeps_the_lock(clients: list[LockClient]) -> None:
    check_renew(clients[0], clients[1], ttl_ms=2000, span_s=2.5)


def test_clients_spread_over_nodes(runtime: LocalRuntime) -> None:
    eps = endpoints(runtime.clusters[0])
    ports = {EtcdBackend().client(eps, i).gw.port for i in range(3)}
    assert ports == {e.port for e in eps}
    # ... and each knows every member, to fail over to
    for i in range(3):
        assert {p for _, p in EtcdBackend().client(eps, i).gw.endpoints} == {e.port for e in eps}


def _grants_through_another_member(runtime: LocalRuntime, fault: str) -> None:
    """Client 0 talks to n1; with n1 killed (connections refused) or paused (requests unanswered)
    it still gets grants, from the other members; the lock stays one lock: a client of n3 is
    refused the key meanwhile. Pinned to n1, as clients were before failover, it never would."""
    cluster = runtime.clusters[0]
    eps = endpoints(cluster)
    backend = EtcdBackend({"timeout_ms": "3000"})  # generous: a loaded machine
    c, other = backend.client(eps, 0), backend.client(eps, 2)
    n1 = cluster.nodes[0]
    key = fresh_key()
    c.release(c.acquire(key, 5000, 2000))  # a kept-alive connection to n1
    assert c.gw.port == n1.port
    if fault == "kill":
        cluster.kill_node(n1)
    else:
        cluster.pause_node(n1)
    try:
        # The request on n1's connection fails, and while the others elect a leader (n1 may
        # have led) a grant can time out: a client tries again, as a real one, for a while.
        errors: list[str] = []
        lease = None
        deadline = time.monotonic() + 20
        while lease is None and time.monotonic() < deadline:
            try:
                lease = c.acquire(key, 5000, 2000)
            except Exception as e:
                errors.append(repr(e))
                time.sleep(0.2)
        assert lease is not None, errors
        assert c.gw.port != n1.port
        with pytest.raises(NotAcquired):  # the same lock through another member
            other.acquire(key, 5000, 300)
        c.release(lease)
        other.release(other.acquire(key, 5000, 2000))
    finally:
        if fault == "kill":
            cluster.start_node(n1)
        else:
            cluster.resume_node(n1)
        cluster.wait_ready([n1], timeout=30)
        c.close()
        other.close()


def test_a_client_fails_over_when_its_member_is_killed(runtime: LocalRuntime) -> None:
    _grants_through_another_member(runtime, "kill")


def test_a_client_fails_over_when_its_member_stops_answering(runtime: LocalRuntime) -> None:
    _grants_through_another_member(runtime, "pause")


def test_unreachable_node_fails_cleanly(runtime: LocalRuntime) -> None:
    # Nothing listens on this port: the lease grant fails, so the acquire certainly failed.
    c = EtcdBackend().client([Endpoint("x", "127.0.0.1", 9)], 0)
    with pytest.raises(LockFailed) as info:
        c.acquire(fresh_key(), 1000, 100)
    assert not isinstance(info.value, NotAcquired)


def test_zero_wait_on_a_free_lock_acquires(clients: list[LockClient]) -> None:
    lease = clients[0].acquire(fresh_key(), 5000, 0)
    clients[0].release(lease)


def test_bad_option_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="nodes='x' is not accepted"):
        EtcdBackend({"nodes": "x"})
    with pytest.raises(ValueError, match="has no option"):
        EtcdBackend({"bogus": "1"})


def test_short_run_is_valid(tmp_path) -> None:
    check_short_run(tmp_path, "etcd")


def test_teardown_leaves_no_process(runtime: LocalRuntime) -> None:
    # Last in the file: ends the module's cluster and checks that nothing of it is left.
    check_teardown(runtime)
