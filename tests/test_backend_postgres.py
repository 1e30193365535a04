"""The postgres (advisory lock) and postgres-lease (lease table) backends on a real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from backends.base import Backend, Endpoint, LockClient, LockFailed, NotAcquired, NotOwner
from backends.postgres import PostgresBackend, PostgresLockClient
from backends.postgres_lease import PostgresLeaseBackend
from harness.runtime import LocalRuntime, MissingBinary
from harness.runtime.postgres import PostgresServer

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
    PostgresServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("pg"))
    try:
        rt.start("postgres", 1)
        eps = endpoints(rt.clusters[0])
        PostgresBackend().setup(eps)
        PostgresLeaseBackend().setup(eps)
        yield rt
    finally:
        rt.close()


@pytest.fixture
def eps(runtime: LocalRuntime) -> list[Endpoint]:
    return endpoints(runtime.clusters[0])


@pytest.fixture(params=["advisory", "advisory-session-ttl", "lease"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "lease":
        return PostgresLeaseBackend()
    return PostgresBackend({"session_ttl": str(request.param.endswith("ttl")).lower()})


@pytest.fixture
def clients(backend: Backend, eps: list[Endpoint]) -> Iterator[list[LockClient]]:
    cs = make_clients(backend, eps, 3)
    yield cs
    for c in cs:
        c.close()


def test_mutual_exclusion(clients: list[LockClient]) -> None:
    check_mutual_exclusion(clients[0], clients[1])


def test_fences_increase(clients: list[LockClient]) -> None:
    check_fences_increase(clients[0], clients[1])


def test_double_release_is_not_owner(clients: list[LockClient]) -> None:
    check_double_release(clients[0])


def test_release_by_another_session_is_not_owner(
    backend: Backend, clients: list[LockClient]
) -> None:
    if not isinstance(backend, PostgresBackend):
        pytest.skip("a lease row's token is a bearer token: whoever has the lease may release")
    a, b = clients[0], clients[1]
    la = a.acquire(fresh_key(), 10_000, 1000)
    with pytest.raises(NotOwner):
        b.release(la)
    a.release(la)  # still a's


def test_zero_wait(clients: list[LockClient]) -> None:
    a, b = clients[0], clients[1]
    key = fresh_key()
    la = a.acquire(key, 10_000, 0)
    with pytest.raises(NotAcquired):
        b.acquire(key, 10_000, 0)
    a.release(la)


def test_expiry(backend: Backend, clients: list[LockClient]) -> None:
    if isinstance(backend, PostgresBackend) and not backend.session_ttl:
        pytest.skip("a plain advisory lock has no TTL (see test_terminated_session_*)")
    check_expiry(clients[0], clients[2], ttl_ms=500, wait_ms=3000)


def test_renew(backend: Backend, clients: list[LockClient]) -> None:
    check_renew(clients[0], clients[1], ttl_ms=600, span_s=1.2)


def test_terminated_session_loses_the_advisory_lock(eps: list[Endpoint]) -> None:
    a, c = make_clients(PostgresBackend(), eps, 2)
    admin = psycopg.connect(host=eps[0].host, port=eps[0].port, user="postgres", autocommit=True)
    try:
        key = fresh_key()
        la = a.acquire(key, 10_000, 1000)
        assert isinstance(a, PostgresLockClient) and a.session.conn is not None
        admin.execute("SELECT pg_terminate_backend(%s)", (a.session.conn.info.backend_pid,))
        lc = c.acquire(key, 10_000, 3000)
        assert lc.fence > la.fence
        with pytest.raises(NotOwner, match="ended the session"):
            a.renew(la, 10_000)
        with pytest.raises(NotOwner):  # a fresh session of a's does not hold it either
            a.release(la)
        c.release(lc)
    finally:
        admin.close()
        a.close()
        c.close()


def test_unreachable_server_fails_cleanly() -> None:
    c = PostgresLeaseBackend().client([Endpoint("x", "127.0.0.1", 9)], 0)
    with pytest.raises(LockFailed):
        c.acquire(fresh_key(), 1000, 100)


def test_bad_option_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="session_ttl='sometimes' is not accepted"):
        PostgresBackend({"session_ttl": "sometimes"})


@pytest.mark.parametrize("name", ["postgres", "postgres-lease"])
def test_short_run_is_valid(tmp_path, name: str) -> None:
    check_short_run(tmp_path, name)


def test_teardown_leaves_no_process(runtime: LocalRuntime) -> None:
    # Last in the file: ends the module's server (and its backends) and checks for leftovers.
    t0 = time.monotonic()
    check_teardown(runtime)
    assert time.monotonic() - t0 < 15
