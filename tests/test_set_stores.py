"""The lock-set data stores against real servers: for each store, plain accepts a stale write,
fenced refuses a write with an older fence, guarded refuses a write once the writer's lock is
gone for real (expired, revoked, or its session expired)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from backends.base import Endpoint, LockClient
from backends.etcd import EtcdBackend
from backends.postgres_lease import PostgresLeaseBackend
from backends.redis import RedisBackend
from backends.zookeeper import ZooKeeperBackend
from harness.run.workers import context
from harness.runtime import LocalRuntime, MissingBinary
from harness.runtime.base import wait_until
from workloads import stores
from workloads.stores import NotHeld, SetStore, StaleWrite
from workloads.stores.memory import MemoryStore

from .backend_contract import endpoints, fresh_key

KINDS = ("redis", "postgres", "etcd", "zookeeper")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("stores"))
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture(scope="module")
def servers(runtime: LocalRuntime) -> dict[str, list[Endpoint]]:
    """One node of each kind, started once for the module."""
    out = {}
    for kind in KINDS:
        try:
            out[kind] = endpoints(runtime.start(kind, 1))
        except MissingBinary as e:  # pragma: no cover - depends on the machine
            pytest.skip(str(e))
    PostgresLeaseBackend().setup(out["postgres"])
    return out


Make = Callable[[str], tuple[SetStore, str]]


@pytest.fixture(params=["memory", *KINDS])
def make(request: pytest.FixtureRequest) -> Iterator[Make]:
    """A store of the given kind in a given mode, set up with one fresh key."""
    made: list[SetStore] = []

    def _make(mode: str) -> tuple[SetStore, str]:
        key = fresh_key("set")
        if request.param == "memory":
            s: SetStore = MemoryStore(mode)
        else:
            eps = request.getfixturevalue("servers")[request.param]
            s = stores.store_class(request.param)(mode, eps, timeout_ms=3000)
        s.setup([key])
        made.append(s)
        return s, key

    yield _make
    for s in made:
        s.close()


def test_plain_accepts_a_stale_write(make: Make) -> None:
    s, key = make("plain")
    assert s.read(key) == []
    s.write(key, [1, 2], 5, None)
    s.write(key, [3], 3, None)  # an older fence, written anyway: the usual code
    assert s.read(key) == [3] and s.final_read(key) == [3]


def test_fenced_rejects_an_older_fence(make: Make) -> None:
    s, key = make("fenced")
    s.write(key, [1], 5, None)
    with pytest.raises(StaleWrite, match="^stale fence"):
        s.write(key, [1, 2], 4, None)
    assert s.read(key) == [1]
    s.write(key, [1, 3], 5, None)  # the same hold may write again
    s.write(key, [1, 3, 4], 9, None)
    with pytest.raises(StaleWrite):
        s.write(key, [7], 8, None)
    assert s.final_read(key) == [1, 3, 4]


def test_memory_store_is_shared_by_forked_workers() -> None:
    ctx = context()
    s = MemoryStore("fenced", ctx=ctx, capacity=8)
    s.setup(["a", "b"])
    s.write("a", [1], 10, None)

    def child() -> None:
        s.write("b", [4, 5], 1, None)
        try:
            s.write("a", [9], 3, None)
        except StaleWrite:
            s.write("b", [4, 5, 6], 1, None)

    p = ctx.Process(target=child)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert s.read("a") == [1] and s.read("b") == [4, 5, 6]
    with pytest.raises(ValueError, match="capacity"):
        s.write("a", list(range(9)), 11, None)


def test_redis_store_connects_per_process(servers: dict[str, list[Endpoint]]) -> None:
    ctx = context()
    s = stores.store_class("redis")("plain", servers["redis"])
    key = fresh_key("set")
    s.setup([key])
    s.write(key, [1], None, None)  # the parent's connection exists before the fork
    p = ctx.Process(target=lambda: s.write(key, [*s.read(key), 2], None, None))
    p.start()
    p.join(30)
    assert p.exitcode == 0 and s.read(key) == [1, 2]
    s.close()


# -- guarded: the lock ends for real, then the old holder's write is refused ----------------------


def _guarded(
    store: SetStore, lock: Callable[[], LockClient], end: Callable[[LockClient, object], None]
) -> None:
    key = fresh_key("g")
    store.setup([key])
    a, b = lock(), lock()
    try:
        la = a.acquire(key, ttl_ms=500, wait_ms=2000)
        store.write(key, [1], la.fence, la)
        end(a, la)
        with pytest.raises(NotHeld):
            store.write(key, [1, 99], la.fence, la)
        assert store.read(key) == [1]
        lb = b.acquire(key, ttl_ms=10_000, wait_ms=10_000)
        store.write(key, [1, 2], lb.fence, lb)
        with pytest.raises(NotHeld):  # the lock is held again, by someone else
            store.write(key, [1, 99], la.fence, la)
        assert store.final_read(key) == [1, 2]
        b.release(lb)
    finally:
        a.close()
        b.close()
        store.close()


def test_redis_guarded_refuses_after_the_lock_expired(servers: dict[str, list[Endpoint]]) -> None:
    eps = servers["redis"]
    import redis

    r = redis.Redis(host=eps[0].host, port=eps[0].port, socket_timeout=5)

    def expire(_c: LockClient, lease: object) -> None:
        assert wait_until(lambda: not r.exists(f"lock:{lease.key}"), 10)  # type: ignore[attr-defined]

    _guarded(
        stores.store_class("redis")("guarded", eps), lambda: RedisBackend().client(eps, 0), expire
    )
    r.close()


def test_postgres_guarded_refuses_after_the_lease_expired(
    servers: dict[str, list[Endpoint]],
) -> None:
    eps = servers["postgres"]
    _guarded(
        stores.store_class("postgres")("guarded", eps),
        lambda: PostgresLeaseBackend().client(eps, 0),
        lambda _c, _lease: time.sleep(0.8),  # past the 500 ms TTL by the database clock
    )


def test_etcd_guarded_refuses_after_the_lease_was_revoked(
    servers: dict[str, list[Endpoint]],
) -> None:
    eps = servers["etcd"]
    gw_timeout = 5.0

    def revoke(c: LockClient, lease: object) -> None:
        # Revoking the lease deletes the lock key, as its expiry would (etcd's TTL minimum is
        # seconds; a revoke is the same deletion, sooner).
        c.gw.call("/v3/lease/revoke", {"ID": lease.data["lease"]}, gw_timeout)  # type: ignore[attr-defined]

    _guarded(
        stores.store_class("etcd")("guarded", eps),
        lambda: EtcdBackend({"nodes": "1"}).client(eps, 0),
        revoke,
    )


def test_zookeeper_guarded_refuses_after_the_session_expired(
    servers: dict[str, list[Endpoint]],
) -> None:
    eps = servers["zookeeper"]
    hosts = ",".join(f"{e.host}:{e.port}" for e in eps)

    def expire(c: LockClient, lease: object) -> None:
        # As ZooKeeper's own tests do: a twin connection on the same session closes it, and the
        # server expires the session: its ephemeral lock node is deleted.
        twin = KazooClient(hosts=hosts, client_id=c.session, timeout=3.0)  # type: ignore[attr-defined]
        twin.start(timeout=10)
        twin.stop()
        twin.close()
        path = lease.data.path  # type: ignore[attr-defined]
        probe = KazooClient(hosts=hosts, timeout=3.0)
        probe.start(timeout=10)
        try:
            assert wait_until(lambda: probe.exists(path) is None, 10)
        finally:
            probe.stop()
            probe.close()

    _guarded(
        stores.store_class("zookeeper")("guarded", eps),
        lambda: ZooKeeperBackend({"nodes": "1"}).client(eps, 0),
        expire,
    )


# -- validation: one line, before any server starts -----------------------------------------------


@pytest.mark.parametrize(
    ("store", "mode", "lock", "fences", "same", "says"),
    [
        ("memory", "guarded", "redis", True, False, "cannot check the lock"),
        ("redis", "guarded", "postgres-lease", True, False, "only on the lock's own cluster"),
        ("redis", "guarded", "redis", True, False, "only on the lock's own cluster"),
        ("postgres", "guarded", "postgres", True, True, "postgres-lease"),
        ("etcd", "fenced", "redlock", False, False, "needs fence tokens"),
        ("etcd", "sloppy", "etcd", True, True, "not one of plain, fenced, guarded"),
        ("mysql", "plain", "etcd", True, True, "not one of etcd, memory, postgres, redis"),
    ],
)
def test_impossible_modes_are_refused_in_one_line(
    store: str, mode: str, lock: str, fences: bool, same: bool, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as e:
        stores.validate(store, mode, lock, fences, same)
    assert "\n" not in str(e.value)


def test_possible_modes_pass_validation() -> None:
    for store, lock in [("redis", "redis"), ("postgres", "postgres-lease")]:
        stores.validate(store, "guarded", lock, True, True)
    stores.validate("etcd", "guarded", "etcd", True, True)
    stores.validate("zookeeper", "guarded", "zookeeper", True, True)
    stores.validate("memory", "fenced", "etcd", True, False)
    stores.validate("postgres", "plain", "redlock", False, False)
