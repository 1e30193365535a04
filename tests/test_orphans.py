"""A SIGKILLed harness leaves no process of its run behind.

The harness cannot tear down after SIGKILL; its servers and client workers must die with it by
themselves (PR_SET_PDEATHSIG with SIGKILL, which also ends a process stopped by client-pause),
and the run's guard ends what that cannot reach (a paused server's children: test_leaks.py).
Each test starts a real ``harness run``, waits until the fault is in force, SIGKILLs the
harness, and then finds none of the run's processes (every descendant of the harness, plus
the server and worker pids config.json records) alive within 10 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import HARNESS, ROOT, descendants, need_server, pid_alive

START_TIMEOUT_S = 60  # a loaded machine starts a ZooKeeper quorum slowly
GONE_WITHIN_S = 10


_STOPPED_OR_DEAD = {"T", "t", "Z", "gone"}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _shared_files(pid: int) -> set[str]:
    """PostgreSQL's /dev/shm segments and a JVM's hsperfdata file that ``pid`` maps."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {
        line.split()[-1]
        for line in maps.splitlines()
        if "/dev/shm/PostgreSQL." in line or "/hsperfdata_" in line
    }


def _run_dir(store: Path) -> Path | None:
    found = list(store.glob("*/*/config.json"))
    return found[0].parent if found else None


def _history(store: Path) -> list[dict]:
    d = _run_dir(store)
    if d is None or not (d / "history.jsonl").exists():
        return []
    lines = (d / "history.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.endswith("}")]


def _kill_harness_when(store: Path, args: list[str], ready: Callable[[set[int]], bool]) -> None:
    proc = subprocess.Popen(
        [*HARNESS, "run", *args, "--store", str(store), "--no-report"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    victims: set[int] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            victims |= descendants(proc.pid)
            if ready(victims):
                break
            assert time.monotonic() < deadline, "the fault never came into force"
            time.sleep(0.05)
        victims |= descendants(proc.pid)
        # Files a killed server would leave outside its run directory: none is even made.
        left_outside = {p: f for p in victims for f in _shared_files(p)}
        assert left_outside == {}, left_outside
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        config = json.loads((_run_dir(store) / "config.json").read_text())
        recorded = {s["pid"] for s in config["servers"]} | set(config["worker_pids"])
        assert recorded <= victims  # the walk of the process tree found them all
        victims |= recorded
        end = time.monotonic() + GONE_WITHIN_S
        while any(pid_alive(p) for p in victims) and time.monotonic() < end:
            time.sleep(0.1)
        left = {p: _state(p) for p in victims if pid_alive(p)}
        assert left == {}, f"processes of the run still alive {GONE_WITHIN_S} s after SIGKILL"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for p in victims:  # ours, by pid: never leave a stopped process behind a failed test
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


def test_sigkill_during_client_pause_leaves_no_process(store: Path) -> None:
    """A client worker stopped by client-pause stayed stopped forever after the harness died."""
    need_server("redis")
    args = ["--backend", "redis", "--nemesis", "client-pause", "--nemesis-interval", "0.5"]
    args += ["-t", "60", "-c", "3", "--keys", "1", "--ttl", "500", "--hold", "100"]

    def a_client_is_stopped(pids: set[int]) -> bool:
        return any(_state(p) == "T" for p in pids)

    _kill_harness_when(store, args, a_client_is_stopped)


def test_sigkill_during_zookeeper_partition_leaves_no_process(store: Path) -> None:
    """ZooKeeper clients blocked in kazoo calls kept the run's namespace and rules alive."""
    need_server("zookeeper")
    if os.geteuid() != 0:
        pytest.skip("partitions need root (a private network namespace and iptables)")
    args = ["--backend", "zookeeper", "--nemesis", "partition", "--nemesis-interval", "1"]
    args += ["-t", "60", "-c", "4", "--keys", "1", "--hold", "50"]

    def partitioned(pids: set[int]) -> bool:
        ops = _history(store)
        started = [o for o in ops if o["f"] == "start-partition" and o["type"] == "info"]
        return bool(started) and not started[-1].get("error")

    _kill_harness_when(store, args, partitioned)


def test_sigkill_of_a_postgres_run_leaves_no_process(store: Path) -> None:
    """PostgreSQL's backends run in sessions of their own; they end when the postmaster dies."""
    need_server("postgres")
    args = ["--backend", "postgres-lease", "-t", "60", "-c", "3", "--keys", "1"]

    def serving(pids: set[int]) -> bool:
        return sum(o["f"] == "acquire" and o["type"] == "ok" for o in _history(store)) >= 5

    _kill_harness_when(store, args, serving)


def test_every_kazoo_call_is_bounded() -> None:
    """kazoo's synchronous calls wait on ``.get()`` with no timeout: an answer that never comes
    (the reason ZooKeeper workers hung) blocked the client forever. The backend's clients bound
    every such wait by session + connect timeout (here 1.5 s)."""
    from kazoo.handlers.threading import KazooTimeoutError

    from backends.base import Endpoint
    from backends.zookeeper import ZooKeeperBackend

    backend = ZooKeeperBackend({"session_timeout_ms": "1000", "connect_timeout_ms": "500"})
    client = backend.client([Endpoint("n1", "127.0.0.1", 9)], 0)
    never_answered = client.zk.handler.async_result()  # what every synchronous call waits on
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            never_answered.get()
        except BaseException as e:
            raised.append(e)

    t0 = time.monotonic()
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(10)
    assert not waiter.is_alive(), "an unanswered kazoo call is still waiting after 10 s"
    assert isinstance(raised[0], KazooTimeoutError)
    assert time.monotonic() - t0 >= 1.4


@pytest.mark.parametrize("backend_name", ["postgres", "postgres-lease"])
def test_postgres_calls_to_a_paused_server_are_bounded(store: Path, backend_name: str) -> None:
    """A paused (SIGSTOPped) server's kernel still acknowledges packets and keepalives, so no
    TCP timeout fires: a statement waited for the server to resume, forever if it never did.
    Every call is bounded (here 3 x connect_timeout_s = 3 s) and ends as an unknown outcome."""
    import psycopg

    from backends import registry
    from backends.base import Endpoint
    from harness.runtime import LocalRuntime

    need_server("postgres")
    backend = registry.make(backend_name, {"connect_timeout_s": "1"})
    with LocalRuntime(store) as rt:
        cluster = rt.start("postgres", 1)
        eps = [Endpoint(n.name, n.host, n.port) for n in cluster.nodes]
        backend.setup(eps)
        client = backend.client(eps, 0)
        lease = client.acquire("k", ttl_ms=60_000, wait_ms=1000)
        # The runtime's own pause: it must stop every backend too (their own sessions).
        node = cluster.nodes[0]
        cluster.pause_node(node)
        paused = {node.pid} | descendants(node.pid)
        end = time.monotonic() + 5  # a stop signal is delivered asynchronously
        # stopped, or already dead (a zombie, or reaped: an exiting backend serves nothing)
        while time.monotonic() < end and not all(_state(p) in _STOPPED_OR_DEAD for p in paused):
            time.sleep(0.05)
        assert all(_state(p) in _STOPPED_OR_DEAD for p in paused), {p: _state(p) for p in paused}
        raised: list[BaseException] = []

        def release() -> None:
            try:
                client.release(lease)
            except BaseException as e:
                raised.append(e)

        t0 = time.monotonic()
        caller = threading.Thread(target=release, daemon=True)
        try:
            caller.start()
            caller.join(15)
            waited = time.monotonic() - t0
        finally:
            cluster.resume_node(node)
        caller.join(15)
        assert not any(_state(p) == "T" for p in paused)
        client.close()
    assert waited < 15, "the release still waited for the paused server after 15 s"
    assert len(raised) == 1 and isinstance(raised[0], psycopg.OperationalError), raised
    assert waited >= 2.5
