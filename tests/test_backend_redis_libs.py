"""The pottery Redlock and python-redis-lock adapters against real redis-servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import registry
from backends.base import LockClient, LockFailed, NotAcquired, NotOwner
from backends.pottery_redlock import PotteryRedlockBackend
from backends.python_redis_lock import PythonRedisLockBackend
from backends.redlock import OutcomeUnknown
from harness.runtime import Cluster, LocalRuntime, MissingBinary
from harness.runtime.redis import RedisServer

from .backend_contract import (
    check_double_release,
    check_expiry,
    check_mutual_exclusion,
    check_renew,
    check_short_run,
    endpoints,
    fresh_key,
    make_clients,
)

try:
    RedisServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)

FAST_S = 0.5  # far above one 50 ms node timeout, far below "waited for a stopped node"


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with LocalRuntime(tmp_path_factory.mktemp("redis5")) as rt:
        yield rt.start("redis", 5)


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with LocalRuntime(tmp_path_factory.mktemp("redis1")) as rt:
        yield rt.start("redis", 1)


def _clients(backend, cluster: Cluster, n: int = 2) -> Iterator[list[LockClient]]:
    cs = make_clients(backend, endpoints(cluster), n)
    yield cs
    for c in cs:
        c.close()


@pytest.fixture
def pottery(five: Cluster) -> Iterator[list[LockClient]]:
    yield from _clients(PotteryRedlockBackend(), five)


@pytest.fixture
def prl(one: Cluster) -> Iterator[list[LockClient]]:
    yield from _clients(PythonRedisLockBackend(), one)


# -- pottery ----------------------------------------------------------------------------------


def test_pottery_mutual_exclusion(pottery: list[LockClient]) -> None:
    check_mutual_exclusion(pottery[0], pottery[1])


def test_pottery_double_release_is_not_owner(pottery: list[LockClient]) -> None:
    check_double_release(pottery[0])


def test_pottery_expiry(pottery: list[LockClient]) -> None:
    check_expiry(pottery[0], pottery[1], ttl_ms=400, wait_ms=3000)


def test_pottery_renew_and_its_extension_cap(pottery: list[LockClient]) -> None:
    check_renew(pottery[0], pottery[1], ttl_ms=450, span_s=0.4)  # 3 renews: pottery's cap
    a = pottery[0]
    lease = a.acquire(fresh_key(), ttl_ms=10_000, wait_ms=0)
    for _ in range(3):
        a.renew(lease, 10_000)
    with pytest.raises(LockFailed, match="more than 3 extensions") as e:
        a.renew(lease, 10_000)
    assert not isinstance(e.value, NotOwner)  # refused by the library, the lock is still ours
    a.release(lease)


def test_pottery_uses_the_redlock_key_on_every_master(five: Cluster, pottery) -> None:
    import redis

    key = fresh_key()
    lease = pottery[0].acquire(key, ttl_ms=10_000, wait_ms=0)
    for n in five.nodes:
        r = redis.Redis(host=n.host, port=n.port, socket_timeout=1)
        assert r.get(f"redlock:{key}") == lease.token.encode()
        r.close()
    pottery[0].release(lease)


def test_pottery_majority(tmp_path) -> None:
    with LocalRuntime(tmp_path) as rt:
        cluster = rt.start("redis", 5)
        a, b = make_clients(PotteryRedlockBackend(), endpoints(cluster), 2)
        cluster.pause_node(cluster.nodes[4])
        key = fresh_key()
        t0 = time.monotonic()
        lease = a.acquire(key, ttl_ms=10_000, wait_ms=0)
        assert time.monotonic() - t0 < FAST_S
        cluster.resume_node(cluster.nodes[4])
        for n in cluster.nodes[:2]:
            cluster.kill_node(n)
        with pytest.raises(NotAcquired):
            b.acquire(key, ttl_ms=10_000, wait_ms=100)
        a.release(lease)
        b.release(b.acquire(key, ttl_ms=10_000, wait_ms=0))  # 3 of 5 live: still a quorum
        lease = a.acquire(key, ttl_ms=10_000, wait_ms=0)
        for n in cluster.nodes[2:4]:
            cluster.pause_node(n)
        # One deletion, two masters silent: pottery refuses, and that is no certain NotOwner.
        with pytest.raises(OutcomeUnknown, match="master error"):
            a.release(lease)
        cluster.kill_node(cluster.nodes[2])
        with pytest.raises(NotAcquired):
            b.acquire(key, ttl_ms=10_000, wait_ms=300)
        a.close()
        b.close()


def test_pottery_options_are_checked() -> None:
    need = PotteryRedlockBackend({"nodes": "3", "persistence": "always"}).servers()
    assert (need.nodes, need.options) == (3, {"persistence": "always"})
    with pytest.raises(ValueError, match="num_extensions=.* is not accepted: give an integer"):
        PotteryRedlockBackend({"num_extensions": "-1"})


# -- python-redis-lock ------------------------------------------------------------------------


def test_prl_mutual_exclusion(prl: list[LockClient]) -> None:
    check_mutual_exclusion(prl[0], prl[1])


def test_prl_double_release_is_not_owner(prl: list[LockClient]) -> None:
    check_double_release(prl[0])


def test_prl_expiry_in_whole_seconds(prl: list[LockClient]) -> None:
    # 400 ms is rounded up to the library's unit: the lock lasts one second.
    check_expiry(prl[0], prl[1], ttl_ms=400, wait_ms=3000)


def test_prl_renew(prl: list[LockClient]) -> None:
    check_renew(prl[0], prl[1], ttl_ms=1000, span_s=1.5)


def test_prl_release_wakes_a_waiter(prl: list[LockClient]) -> None:
    a, b = prl
    key = fresh_key()
    lease = a.acquire(key, ttl_ms=10_000, wait_ms=0)
    timer = threading.Timer(0.3, a.release, args=(lease,))
    timer.start()
    t0 = time.monotonic()
    lb = b.acquire(key, ttl_ms=10_000, wait_ms=5000)  # BLPOP on the signal list
    waited = time.monotonic() - t0
    timer.join()
    assert 0.25 < waited < 1.5, waited  # woken by the release, long before the 10 s TTL
    b.release(lb)


def test_prl_auto_renewal_outlives_the_ttl(one: Cluster) -> None:
    a, b = make_clients(PythonRedisLockBackend({"auto_renewal": "true"}), endpoints(one), 2)
    key = fresh_key()
    lease = a.acquire(key, ttl_ms=1000, wait_ms=0)
    time.sleep(1.6)  # the renewal thread extends every 2/3 s
    with pytest.raises(NotAcquired):
        b.acquire(key, ttl_ms=1000, wait_ms=0)
    a.release(lease)
    b.release(b.acquire(key, ttl_ms=1000, wait_ms=0))
    a.close()
    b.close()


def test_prl_options_are_checked() -> None:
    need = PythonRedisLockBackend({"persistence": "everysec"}).servers()
    assert (need.kind, need.nodes, need.options) == ("redis", 1, {"persistence": "everysec"})
    with pytest.raises(ValueError, match="auto_renewal=.* is not accepted: give true or false"):
        PythonRedisLockBackend({"auto_renewal": "sometimes"})


@pytest.mark.parametrize(
    ("name", "cls", "opts"),
    [
        ("pottery", PotteryRedlockBackend, {}),
        ("python-redis-lock", PythonRedisLockBackend, {"auto_renewal": "true"}),
    ],
)
def test_end_to_end_run_is_valid(tmp_path: Path, name, cls, opts) -> None:
    assert registry.backend_class(name) is cls  # the entry point names this class
    check_short_run(tmp_path, name, **opts)
