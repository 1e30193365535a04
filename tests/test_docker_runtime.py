"""The Docker runtime on a real engine: dockerd in a network namespace the test made (never the
host's network), images built here from Debian packages (cached by recipe hash), real servers
in containers.

- a clean run is VALID and a known-breaking fault is INVALID for redis, etcd and postgres-lease;
- kill, pause and node<->node partitions act on containers (facts read from the servers);
- nothing is left behind (containers, namespaces, mounts, processes, cgroups, iptables) after
  a normal end, Ctrl-C, SIGTERM, and a SIGKILL followed by ``harness doctor --clean``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checkers.history import read
from harness.run import run_test
from harness.run.config import RunConfig, run_config

from .conftest import HARNESS, ROOT, harness

pytestmark = pytest.mark.slow

KINDS = ("redis", "etcd", "postgres")


def _iptables() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30).stdout


def leftovers(marker: str) -> list[str]:
    """Everything on the machine that still names ``marker`` (an engine's name or prefix)."""
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"namespace {ln}" for ln in ns.splitlines() if marker in ln]
    for base in (Path("/run/lockharness-docker"), Path("/var/lib/lockharness-docker")):
        if base.is_dir():
            found += [f"path {p}" for p in base.iterdir() if marker in p.name]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {ln.split()[4]}" for ln in f if marker in ln]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(f"process {pid} {cmd[:80]!r}")
    cg = Path("/sys/fs/cgroup")
    found += [f"cgroup {d}" for d in cg.glob(f"*/{marker}*")] + [
        f"cgroup {d}" for d in cg.glob(f"{marker}*")
    ]
    return found


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """A private engine with the three images imported (built first when not cached)."""
    from harness.containers import engine as eng
    from harness.containers import images

    ok, why = eng.available()
    if not ok:
        pytest.skip(f"no private Docker engine here: {why} (./setup.sh installs docker.io)")
    for k in KINDS:
        images.build(k)
    rules = _iptables()
    e = eng.PrivateEngine().start()
    try:
        for k in KINDS:
            images.ensure(e.client, images.tag_for(k))
        yield e
    finally:
        e.close()
    assert leftovers(e.netns) == []
    assert _iptables() == rules


def _cfg(engine: Any, store: Path, **kw: Any) -> RunConfig:
    base = dict(
        runtime="docker",
        docker_host=engine.url,
        docker_netns=engine.netns,
        images={k: f"lockharness/{k}:bookworm" for k in KINDS},
        store=store,
        keys=1,
        concurrency=3,
        render_report=False,
        seed=3,
    )
    return run_config(**(base | kw))


def _no_containers(engine: Any) -> None:
    assert engine.client.containers.list(all=True) == []


BACKENDS = [("redis", "redis"), ("etcd", "etcd"), ("postgres-lease", "postgres")]


@pytest.mark.parametrize(("backend", "kind"), BACKENDS, ids=[b for b, _ in BACKENDS])
def test_clean_run_in_containers_is_valid(engine, tmp_path, backend, kind) -> None:
    res = run_test(_cfg(engine, tmp_path, backend=backend, time_limit=2.5))
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    assert res.results["checkers"]["mutex"]["hold_count"] >= 5
    config = json.loads((res.run_dir / "config.json").read_text())
    servers = [s for s in config["servers"] if s["kind"] == kind]
    assert servers and all(s["image"] == f"lockharness/{kind}:bookworm" for s in servers)
    assert all(s["version"] and s["container"] for s in servers), servers  # reported by each
    assert config["runtime"] == "docker" and config["docker"]["netns"] == engine.netns
    _no_containers(engine)


def test_a_store_under_a_0700_directory_keeps_its_modes(engine, tmp_path, monkeypatch) -> None:
    """No mode of the user's directories changes and the run is still VALID, clock shim
    included: dockerd (root) resolves each bind mount's source; a node dir the node's uid
    cannot reach on the host (nor, maybe, in the image) lives in a scratch dir during the run
    and is back in the store after it. The clock shim's cache under the home (0700, and so is
    the image's /root): ld.so would skip it with a line in the log and the clock stay true."""
    import shutil
    import tempfile

    import harness.clock

    cache = Path(tempfile.mkdtemp(prefix=".lh-shim-", dir=Path.home()))
    monkeypatch.setattr(harness.clock, "default_cache_dir", lambda: cache)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    store = locked / "inner" / "store"
    store.mkdir(parents=True)
    ancestors = [store, *store.parents]
    before = {p: p.stat().st_mode for p in ancestors}
    try:
        res = run_test(
            _cfg(
                engine,
                store,
                backend="redis",
                nemesis=["clock"],  # the shim in every node; a bump far inside the lease
                nemesis_opts={"offset_ms": "50"},
                nemesis_interval=1.0,
                ttl_ms=5000,
                hold_ms=100,
                time_limit=3,
            )
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    assert res.results["checkers"]["mutex"]["hold_count"] >= 5
    ops = [o for o in read(res.run_dir / "history.jsonl").ops if o.process == "nemesis"]
    assert any(o.f == "start-clock" and o.type == "info" for o in ops), ops
    after = {p: p.stat().st_mode for p in ancestors}
    changed = {str(p): (oct(before[p]), oct(after[p])) for p in ancestors if before[p] != after[p]}
    assert changed == {}, changed
    assert locked.stat().st_mode & 0o777 == 0o700
    nodes = list((res.run_dir / "servers").glob("redis-*"))
    assert nodes and all(n.is_dir() and not n.is_symlink() for n in nodes), nodes
    logs = [(n / "server.log").read_text(errors="replace") for n in nodes]
    assert all(log and "cannot be preloaded" not in log for log in logs), logs
    assert all(list(n.glob("clockshim-*.so")) for n in nodes)  # copied where the node reaches
    _no_containers(engine)


def _known_break(backend: str) -> dict[str, Any]:
    if backend == "redis":  # a wall clock jumped past the TTL (the clock shim, mounted)
        return dict(
            nemesis=["clock"],
            nemesis_interval=1.0,
            time_limit=5,
            ttl_ms=1000,
            hold_ms=300,
            wait_ms=2000,
            nemesis_opts={"offset_ms": "5000"},
        )
    ttl = 2000 if backend == "etcd" else 1000  # etcd's minimum lease is about 2 s
    return dict(  # a holder frozen past its lease
        nemesis=["client-pause"],
        nemesis_interval=1.0,
        nemesis_opts={"pause_ms": str(int(ttl * 2.2))},
        ttl_ms=ttl,
        hold_ms=ttl // 4,
        wait_ms=2 * ttl,
        # the pause ends before the recovery window, the last tenth of the run, even when
        # the holder is found late (the start may come up to ~0.6 s after it is due)
        time_limit=6.5 if backend == "etcd" else 4.5,
    )


@pytest.mark.parametrize(("backend", "kind"), BACKENDS, ids=[b for b, _ in BACKENDS])
def test_known_breaking_fault_in_containers_is_invalid(engine, tmp_path, backend, kind) -> None:
    res = run_test(_cfg(engine, tmp_path, backend=backend, **_known_break(backend)))
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    kinds = {v["kind"] for v in res.results["checkers"]["mutex"]["violations"]}
    assert kinds & {"overlap", "revoked-while-held"}, kinds
    _no_containers(engine)


def test_kill_and_pause_nemeses_run_on_containers(engine, tmp_path) -> None:
    res = run_test(
        _cfg(
            engine,
            tmp_path,
            backend="redis",
            nemesis=["kill", "pause"],
            nemesis_interval=0.8,
            time_limit=6,  # a pause after the kill's restart, healed before the last 0.6 s
        )
    )
    assert res.valid is True, res.results["summary"]
    ops = [o for o in read(res.run_dir / "history.jsonl").ops if o.process == "nemesis"]
    done = {o.f: o.value for o in ops if o.type == "info"}
    assert done["stop-kill"]["restarted"] and done["stop-kill"]["ready"], done
    assert done["start-pause"]["signal"] == "docker pause", done
    _no_containers(engine)


def test_kill_pause_partition_act_on_containers(engine, tmp_path) -> None:
    """Facts from the servers themselves: a killed container is gone and comes back with its
    data; a paused one answers nothing until resumed; a node cut from its peers by the
    owner-match rules (inside the engine's namespace) loses the leader, and heals."""
    from harness.containers.docker_runtime import DockerRuntime
    from harness.containers.engine import Engine
    from harness.net.firewall import Firewall
    from harness.net.netns import joined
    from harness.runtime.base import wait_until
    from harness.runtime.etcd import _healthy

    with joined(engine.netns):
        eng = Engine(engine.client, engine.netns, engine.url)
        with DockerRuntime(tmp_path, eng, images={"etcd": "lockharness/etcd:bookworm"}) as rt:
            cluster = rt.start("etcd", 3)
            n1, n2, n3 = cluster.nodes
            first = cluster.containers["n1"].id
            cluster.kill_node(n1)
            assert not n1.alive() and n1.proc.returncode == 137
            assert engine.client.containers.get(first).status == "exited"
            cluster.start_node(n1)
            cluster.wait_ready([n1])
            assert cluster.containers["n1"].id != first and (n1.data_dir / "member").is_dir()

            cluster.pause_node(n2)
            assert engine.client.containers.get(cluster.containers["n2"].id).status == "paused"
            assert not _healthy(n2.host, n2.port, timeout=1.0)
            cluster.resume_node(n2)
            assert wait_until(lambda: _healthy(n2.host, n2.port), 20, interval=0.1)

            fw = Firewall()
            try:
                for other in (n1, n2):
                    fw.cut_both(n3, other)
                assert wait_until(lambda: not _healthy(n3.host, n3.port), 20, interval=0.1)
                # The majority keeps (or elects) a leader.
                assert wait_until(
                    lambda: _healthy(n1.host, n1.port) and _healthy(n2.host, n2.port),
                    20,
                    interval=0.1,
                )
                fw.heal()
                assert wait_until(lambda: _healthy(n3.host, n3.port), 30, interval=0.1)
            finally:
                fw.close()
            assert (
                "LOCKHARNESS"
                not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
            )
    _no_containers(engine)


# -- nothing left behind, whatever ends the run ------------------------------------------------


def _private_run(store: Path, time_limit: float) -> subprocess.Popen:
    argv = [
        *HARNESS, "run", "-b", "redis", "-t", str(time_limit), "--no-report",
        "--runtime", "docker", "--docker-host", "private",
        "--image", "redis=lockharness/redis:bookworm", "--store", str(store),
    ]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_running(store: Path, proc: subprocess.Popen) -> dict:
    """The run's config once its clients run (servers up, containers started)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:  # the store changes under the glob (a `.latest-PID` link comes and goes)
            found = list(store.glob("*/*/config.json"))
        except OSError:
            found = []
        for c in found:
            try:
                cfg = json.loads(c.read_text())
            except (ValueError, OSError):
                continue
            if cfg.get("worker_pids"):
                return cfg
        time.sleep(0.2)
    raise AssertionError("the run never started its clients")


@pytest.mark.parametrize("end", ["normal", "ctrl-c", "sigterm", "sigkill"])
def test_nothing_left_behind(tmp_path, end) -> None:
    from harness.containers import engine as eng
    from harness.containers import images

    ok, why = eng.available()
    if not ok:
        pytest.skip(f"no private Docker engine here: {why}")
    images.build("redis")
    rules = _iptables()
    proc = _private_run(tmp_path, 2.0 if end == "normal" else 60.0)
    marker = f"lh-docker-{proc.pid}-"
    try:
        if end == "normal":
            out, errs = proc.communicate(timeout=180)
            assert proc.returncode == 0, errs
        else:
            cfg = _wait_running(tmp_path, proc)
            assert cfg["docker"]["netns"].startswith(marker)
            if end in ("ctrl-c", "sigterm"):
                proc.send_signal(signal.SIGINT if end == "ctrl-c" else signal.SIGTERM)
                out, errs = proc.communicate(timeout=120)
                assert proc.returncode != 1 and "interrupted" in out, (out, errs)
            else:
                proc.kill()
                proc.wait(30)
                assert leftovers(marker)  # engine, namespace and container are still there
                p = harness("doctor", "--clean", timeout=120)
                assert p.returncode == 0 and "removed" in p.stdout, p.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert leftovers(marker) == []
    assert _iptables() == rules


def test_sigkilled_run_in_a_users_engine_is_cleaned_at_the_next_start(engine, tmp_path) -> None:
    """In an engine the harness did not start, a SIGKILLed run leaves its labelled container;
    the next run removes it (its owner is dead) before starting its own."""
    argv = [
        *HARNESS, "run", "-b", "redis", "-t", "60", "--no-report", "--runtime", "docker",
        "--docker-host", engine.url, "--docker-netns", engine.netns,
        "--image", "redis=lockharness/redis:bookworm", "--store", str(tmp_path / "killed"),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_running(tmp_path / "killed", proc)
    finally:
        proc.kill()
        proc.wait(30)
    left = engine.client.containers.list(all=True, filters={"label": "lockharness.run"})
    assert len(left) == 1 and left[0].status == "running", left
    res = run_test(_cfg(engine, tmp_path / "next", backend="redis", time_limit=1.5))
    assert res.valid is True, res.results["summary"]
    _no_containers(engine)


def test_restart_keeps_or_wipes_the_data_of_a_container(engine, tmp_path) -> None:
    """A killed redis container restarts with its append-only file (every acknowledged write),
    or empty when wiped: the node's dir is the container's, emptied on the host."""
    import redis as redis_py

    from harness.containers.docker_runtime import DockerRuntime
    from harness.containers.engine import Engine
    from harness.net.netns import joined

    with joined(engine.netns):
        eng = Engine(engine.client, engine.netns, engine.url)
        with DockerRuntime(tmp_path, eng, images={"redis": "lockharness/redis:bookworm"}) as rt:
            cluster = rt.start("redis", 1)
            (n1,) = cluster.nodes

            def client() -> redis_py.Redis:
                return redis_py.Redis(n1.host, n1.port, socket_timeout=5)

            assert client().set("k", "v")
            for wipe, expected in ((False, b"v"), (True, None)):
                cluster.kill_node(n1)
                assert not n1.alive()
                cluster.start_node(n1, fresh=wipe)
                cluster.wait_ready([n1])
                assert client().get("k") == expected, wipe
    _no_containers(engine)


def test_mongodb_runs_from_the_official_image(engine, tmp_path) -> None:
    """--image mongodb=mongo:7: no Debian package ships mongod and no registry is reachable
    here, so this runs only where the image is in the engine already."""
    from harness.containers.images import ImageError, ensure

    try:  # never pull here: the private engine has no network beyond loopback
        ensure(engine.client, "mongo:7", pull=False)
    except ImageError as e:
        pytest.skip(f"mongo:7 is not in the engine (no registry is reachable here): {e}")
    res = run_test(
        _cfg(engine, tmp_path, backend="mongodb", images={"mongodb": "mongo:7"}, time_limit=3)
    )
    assert res.valid is True, res.results["summary"]
    _no_containers(engine)


def test_ctrl_c_while_the_private_engine_starts_leaves_nothing(tmp_path) -> None:
    """Ctrl-C as soon as the engine's state file exists (dockerd starting, or the image being
    imported): the run says it was interrupted during start-up and leaves nothing behind."""
    from harness.containers import engine as eng
    from harness.containers import images

    ok, why = eng.available()
    if not ok:
        pytest.skip(f"no private Docker engine here: {why}")
    images.build("redis")
    rules = _iptables()
    proc = _private_run(tmp_path, 60.0)
    marker = f"lh-docker-{proc.pid}-"
    try:
        deadline = time.monotonic() + 60
        while not list(eng.STATE_DIR.glob(f"{marker}*.json")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, errs = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 2, (out, errs)
    assert "interrupted" in errs and "Traceback" not in errs, errs
    assert leftovers(marker) == []
    assert _iptables() == rules
