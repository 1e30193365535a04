"""Checks every lock backend must pass against its real server (shared by test_backend_*.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from backends.base import Backend, Endpoint, LockClient, NotAcquired, NotOwner
from harness.runtime import Cluster, LocalRuntime


def endpoints(cluster: Cluster) -> list[Endpoint]:
    return [Endpoint(n.name, n.host, n.port) for n in cluster.nodes]


def fresh_key(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def check_mutual_exclusion(a: LockClient, b: LockClient, wait_ms: int = 300) -> None:
    """One holds, the other waits ``wait_ms`` and gets NotAcquired; after release it gets it."""
    key = fresh_key()
    la = a.acquire(key, ttl_ms=10_000, wait_ms=1000)
    t0 = time.monotonic()
    with pytest.raises(NotAcquired):
        b.acquire(key, ttl_ms=10_000, wait_ms=wait_ms)
    waited = time.monotonic() - t0
    # It must have waited (not given up at once) and not hung far beyond its wait.
    assert wait_ms / 1000 * 0.8 <= waited < wait_ms / 1000 + 5, waited
    a.release(la)
    lb = b.acquire(key, ttl_ms=10_000, wait_ms=2000)
    assert lb.token != la.token
    if la.fence is not None:
        assert lb.fence is not None and lb.fence > la.fence, (la.fence, lb.fence)
    b.release(lb)


def check_fences_increase(a: LockClient, b: LockClient, rounds: int = 6) -> None:
    key = fresh_key()
    fences = []
    for i in range(rounds):
        c = a if i % 2 == 0 else b
        lease = c.acquire(key, ttl_ms=10_000, wait_ms=2000)
        fences.append(lease.fence)
        c.release(lease)
    assert all(f is not None for f in fences), fences
    assert all(x < y for x, y in zip(fences, fences[1:], strict=False)), fences


def check_double_release(a: LockClient) -> None:
    """A lease already released is not owned: releasing it again is refused."""
    lease = a.acquire(fresh_key(), ttl_ms=10_000, wait_ms=1000)
    a.release(lease)
    with pytest.raises(NotOwner):
        a.release(lease)


def check_expiry(a: LockClient, c: LockClient, ttl_ms: int, wait_ms: int) -> None:
    """A holder that stays silent past its TTL loses the lock: another client gets it within
    ``wait_ms``, and the old holder's renew and release raise NotOwner."""
    key = fresh_key()
    la = a.acquire(key, ttl_ms=ttl_ms, wait_ms=1000)
    t0 = time.monotonic()
    lc = c.acquire(key, ttl_ms=10_000, wait_ms=wait_ms)
    assert time.monotonic() - t0 >= ttl_ms / 1000 * 0.5
    if la.fence is not None:
        assert lc.fence > la.fence
    with pytest.raises(NotOwner):
        a.renew(la, ttl_ms)
    with pytest.raises(NotOwner):
        a.release(la)
    c.release(lc)


def check_renew(a: LockClient, b: LockClient, ttl_ms: int, span_s: float) -> None:
    """Renewing every ttl/3 keeps the lock across ``span_s`` > TTL; others stay out."""
    key = fresh_key()
    la = a.acquire(key, ttl_ms=ttl_ms, wait_ms=1000)
    deadline = time.monotonic() + span_s
    renews = 0
    while time.monotonic() < deadline and renews < 100:
        time.sleep(ttl_ms / 3000)
        a.renew(la, ttl_ms)
        renews += 1
    with pytest.raises(NotAcquired):
        b.acquire(key, ttl_ms=ttl_ms, wait_ms=100)
    a.release(la)


def session_pids(runtime: LocalRuntime) -> list[int]:
    return [n.pid for c in runtime.clusters for n in c.nodes if n.pid is not None]


def leftover_processes(pgids: list[int]) -> list[str]:
    """Processes still alive in the sessions (process groups) of the given server pids."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    left = []
    for line in out.splitlines():
        pid, pgid, stat, *args = line.split(None, 3)
        if int(pgid) in pgids and not stat.startswith("Z") and int(pid) != os.getpid():
            left.append(line.strip())
    return left


def check_teardown(runtime: LocalRuntime) -> None:
    pids = session_pids(runtime)
    assert pids, "no server was started"
    runtime.close()
    assert leftover_processes(pids) == []


def make_clients(backend: Backend, eps: list[Endpoint], n: int) -> list[LockClient]:
    return [backend.client(eps, i) for i in range(n)]


def check_short_run(store: Path, backend: str, **opts: str) -> None:
    """A few seconds of the mutex workload through the real run loop: valid, exercised, and
    no server process left afterwards."""
    from harness.run import run_test
    from harness.run.config import RunConfig

    cfg = RunConfig(
        backend=backend, time_limit=4, concurrency=4, keys=2, store=store, seed=1,
        backend_opts=dict(opts),
    )  # fmt: skip
    res = run_test(cfg)
    assert res.valid is True, res.results["summary"]
    assert res.exit_code == 0
    assert res.results["checkers"]["mutex"]["hold_count"] > 20
    servers = json.loads((res.run_dir / "config.json").read_text())["servers"]
    assert leftover_processes([s["pid"] for s in servers]) == []
