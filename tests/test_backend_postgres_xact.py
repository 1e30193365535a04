"""The transaction-held PostgreSQL locks, postgres-xact (pg_advisory_xact_lock) and postgres-row
(SELECT ... FOR UPDATE), on a real PostgreSQL: the contract, and the faults that break them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from backends.base import Backend, Endpoint, LockClient, NotAcquired, NotOwner
from backends.pg_xact import XactLockClient
from backends.postgres_row import PostgresRowBackend
from backends.postgres_xact import PostgresXactBackend
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
from .test_backend_faults import _kinds, _nemesis, _run  # the store fixture: conftest's

try:
    PostgresServer().find_binary()
except MissingBinary as e:  # pragma: no cover - depends on the machine
    pytest.skip(str(e), allow_module_level=True)

BACKENDS = {"postgres-xact": PostgresXactBackend, "postgres-row": PostgresRowBackend}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(tmp_path_factory.mktemp("pgx"))
    try:
        rt.start("postgres", 1)
        eps = endpoints(rt.clusters[0])
        for cls in BACKENDS.values():
            cls().setup(eps)
        yield rt
    finally:
        rt.close()


@pytest.fixture
def eps(runtime: LocalRuntime) -> list[Endpoint]:
    return endpoints(runtime.clusters[0])


@pytest.fixture(params=[(b, t) for b in BACKENDS for t in ("false", "true")],
                ids=lambda p: f"{p[0]}-ttl" if p[1] == "true" else p[0])  # fmt: skip
def backend(request: pytest.FixtureRequest) -> Backend:
    name, ttl = request.param
    return BACKENDS[name]({"xact_ttl": ttl})


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


def test_zero_wait(clients: list[LockClient]) -> None:
    a, b = clients[0], clients[1]
    key = fresh_key()
    la = a.acquire(key, 10_000, 0)
    with pytest.raises(NotAcquired):
        b.acquire(key, 10_000, 0)
    a.release(la)
    b.release(b.acquire(key, 10_000, 0))  # the failed try left nothing behind


def test_renew(clients: list[LockClient]) -> None:
    # With xact_ttl the renew is what keeps the idle transaction alive past its TTL.
    check_renew(clients[0], clients[1], ttl_ms=600, span_s=1.2)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_expiry_with_xact_ttl(eps: list[Endpoint], name: str) -> None:
    """With xact_ttl a silent holder's session is ended by the server after its TTL (without
    it the lock has no TTL: see test_terminated_session_loses_the_lock)."""
    a, c = make_clients(BACKENDS[name]({"xact_ttl": "true"}), eps, 2)
    try:
        check_expiry(a, c, ttl_ms=500, wait_ms=3000)
    finally:
        a.close()
        c.close()


def test_terminated_session_loses_the_lock(backend: Backend, eps: list[Endpoint]) -> None:
    """The transaction dies with its session: another client gets the lock at once, and the
    old holder's renew and release say it is not the owner (not an unknown outcome)."""
    a, c = make_clients(backend, eps, 2)
    admin = psycopg.connect(host=eps[0].host, port=eps[0].port, user="postgres", autocommit=True)
    try:
        key = fresh_key()
        la = a.acquire(key, 10_000, 1000)
        assert isinstance(a, XactLockClient) and a.session.conn is not None
        admin.execute("SELECT pg_terminate_backend(%s)", (a.session.conn.info.backend_pid,))
        lc = c.acquire(key, 10_000, 3000)
        assert lc.fence > la.fence
        with pytest.raises(NotOwner):
            a.renew(la, 10_000)
        with pytest.raises(NotOwner):
            a.release(la)
        c.release(lc)
        a.release(a.acquire(key, 10_000, 1000))  # a works again, on a fresh session
    finally:
        admin.close()
        a.close()
        c.close()


def test_one_hold_per_client(eps: list[Endpoint]) -> None:
    from backends.base import LockFailed

    (a,) = make_clients(PostgresXactBackend(), eps, 1)
    try:
        la = a.acquire(fresh_key(), 10_000, 1000)
        with pytest.raises(LockFailed, match="already holds"):
            a.acquire(fresh_key(), 10_000, 1000)
        a.release(la)
    finally:
        a.close()


def test_bad_option_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="xact_ttl='soon' is not accepted"):
        PostgresRowBackend({"xact_ttl": "soon"})


@pytest.mark.parametrize("name", list(BACKENDS))
def test_short_run_is_valid(tmp_path: Path, name: str) -> None:
    check_short_run(tmp_path, name)


# -- the faults that break them ---------------------------------------------------------------


def _victim_release(ops, start) -> list[str]:
    """Outcomes of the paused client's releases after the pause began."""
    victim, t = start.value["process"], start.time
    return [
        o.type
        for o in ops
        if o.process == victim and o.f == "release" and o.type != "invoke" and o.time > t
    ]


# The two share their transaction handling (pg_xact) and differ in the lock statement: each
# is run under one of the two faults, to keep the suite short.


def test_holder_paused_past_xact_ttl_is_caught(store: Path) -> None:  # noqa: F811
    """postgres-row with xact_ttl: the server ends the frozen holder's idle transaction after
    its TTL; another client takes the row; the holder wakes, writes, and its COMMIT finds the
    session gone. The pause outlasts the TTL by 2 s, so others write before the holder wakes."""
    res, ops = _run(
        store, backend="postgres-row", backend_opts={"xact_ttl": "true"},
        nemesis=["client-pause"], nemesis_interval=1.0, nemesis_opts={"pause_ms": "3000"},
        concurrency=3, ttl_ms=1000, hold_ms=250, wait_ms=1000, time_limit=5.0, seed=1,
    )  # fmt: skip
    paused = _nemesis(ops, "start-client-pause")
    assert len(paused) == 1 and paused[0].value["signal"] == "SIGSTOP", paused
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    kinds = _kinds(res)
    assert sum(kinds.values()) >= 1 and set(kinds) <= {"revoked-while-held", "overlap"}, kinds
    released = _victim_release(ops, paused[0])
    assert released and released[0] == "fail", released  # NotOwner: the session was gone
    fencing = res.results["checkers"]["fencing"]
    assert fencing["stale_accepted"] >= 1
    assert fencing["valid"] is True and fencing["non_increasing"] == 0  # fencing would work


def test_server_kill_breaks_the_lock(store: Path) -> None:  # noqa: F811
    """postgres-xact, no TTL at all, yet a server kill and restart breaks it: the lock dies
    with the server, a waiter reconnects and takes it on the restarted server, while the
    holder, asleep in its critical section, still acts as holder. One kill, 2 s in; the first
    hold (3 s) spans it and ends, with its write, before the run does (4 s): the run's end cuts
    holds short and their writes are skipped."""
    res, ops = _run(
        store, backend="postgres-xact", nemesis=["kill"], nemesis_interval=2.0,
        nemesis_opts={"down_ms": "100"}, concurrency=3, ttl_ms=1000, hold_ms=3000,
        wait_ms=1500, time_limit=4.0, seed=1,
    )  # fmt: skip
    kills = _nemesis(ops, "start-kill")
    assert len(kills) == 1, kills
    restarted = _nemesis(ops, "stop-kill")
    assert restarted and restarted[0].value["ready"], restarted
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    kinds = _kinds(res)
    assert sum(kinds.values()) >= 1 and set(kinds) <= {"revoked-while-held", "overlap"}, kinds
    # The holder at the kill: its release finds the session gone (NotOwner), never "ok".
    t = kills[0].time
    holder = [o for o in ops if o.f == "acquire" and o.type == "ok" and o.time < t][-1].process
    released = [
        o.type
        for o in ops
        if o.process == holder and o.f == "release" and o.type != "invoke" and o.time > t
    ]
    assert released and released[0] == "fail", released
    assert res.results["checkers"]["fencing"]["stale_accepted"] >= 1


def test_teardown_leaves_no_process(runtime: LocalRuntime) -> None:
    # Last in the file: ends the module's server and checks for leftovers.
    check_teardown(runtime)
