"""Lost unsynced writes (the kill nemesis's lose_unsynced=true, a power cut): the harness's own
FUSE filesystem keeps written data until fsync and drops the rest, and Redis with appendfsync
everysec loses its fence counter under it, while appendfsync always keeps it; the mounts go on
every exit path."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from checkers.history import read
from harness.run import run_test
from harness.run.config import run_config
from harness.runtime import syncfs
from harness.runtime.base import Node

from .conftest import HARNESS, ROOT, harness

FUSE_ONLY = pytest.mark.skipif(not syncfs.available()[0], reason=syncfs.available()[1])


@FUSE_ONLY
def test_keeps_what_was_fsynced_and_loses_the_rest(tmp_path: Path) -> None:
    node = Node("n1", "127.0.0.1", 1, tmp_path)
    syncfs.mount(node)
    try:
        d = node.data_dir
        assert os.path.ismount(d)
        with open(d / "log", "wb") as f:
            f.write(b"A" * 5000)
            f.flush()
            os.fsync(f.fileno())
            f.write(b"B" * 3000)  # in memory only
            f.flush()
        assert (d / "log").read_bytes() == b"A" * 5000 + b"B" * 3000  # reads see it
        with open(d / "tmp", "wb") as f:
            f.write(b"C" * 100)
            f.flush()
            os.fsync(f.fileno())
        os.rename(d / "tmp", d / "renamed")  # directory operations are durable at once
        with open(d / "renamed", "r+b") as f:
            f.truncate(10)  # unsynced: lost with the rest
        assert syncfs.lose(node) == {"pages": 1, "files": 2}  # 5000..8000: one page
        assert (d / "log").read_bytes() == b"A" * 5000
        assert (d / "renamed").read_bytes() == b"C" * 100
        assert str(d) in syncfs.mounts()
    finally:
        syncfs.unmount(node)
    assert not os.path.ismount(node.data_dir) and str(node.data_dir) not in syncfs.mounts()
    # what was synced is back in the data dir, where the runtime keeps or removes it
    assert (node.data_dir / "log").read_bytes() == b"A" * 5000
    assert not (tmp_path / "data.synced").exists()


def _run(store: Path, persistence: str):
    cfg = run_config(
        backend="redis",
        backend_opts={"persistence": persistence},
        nemesis=["kill"],
        nemesis_opts={"lose_unsynced": "true", "down_ms": "300"},
        nemesis_interval=1.0,
        time_limit=7,
        concurrency=5,
        keys=1,
        store=store / persistence,
        seed=2,
        render_report=False,
    )
    res = run_test(cfg)
    kills = [
        o.value
        for o in read(res.run_dir / "history.jsonl").ops
        if o.f == "start-kill" and o.type == "info"
    ]
    assert kills and all("lost_unsynced" in v for v in kills)
    assert syncfs.mounts() == [] or all(str(store) not in m for m in syncfs.mounts())
    return res, kills


@FUSE_ONLY
def test_everysec_loses_the_fence_counter_and_always_keeps_it(redis_bin, store: Path) -> None:
    res, kills = _run(store, "everysec")
    fencing = res.results["checkers"]["fencing"]
    assert res.exit_code == 1 and fencing["valid"] is False, fencing["summary"]
    assert any(v["lost_unsynced"]["pages"] for v in kills)
    # a kill between a write and its fsync may lose pages here too, never an acknowledged write
    res, _ = _run(store, "always")
    assert res.exit_code == 0, res.results["summary"]


@FUSE_ONLY
def test_refused_where_it_would_test_the_harness_default(need_postgres) -> None:
    p = harness("run", "-b", "postgres-lease", "-n", "kill", "--nemesis-opt", "lose_unsynced=true")
    assert p.returncode == 2 and "give --opt fsync=on" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


@pytest.fixture
def need_postgres() -> None:
    from .conftest import need_server

    need_server("postgres")


def _daemons(store: Path) -> list[int]:
    """Pids of syncfs daemons serving a dir under ``store`` (read from /proc, nothing ended)."""
    return [
        pid
        for pid, cmd in _processes_in(store).items()
        if "harness.runtime.syncfs" in cmd and str(store) in cmd
    ]


def _processes_in(store: Path) -> dict[int, str]:
    """Processes whose command line names a path under ``store`` or whose working dir is under
    it (servers and daemons a run started), with their command lines, read from /proc."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if str(store) in cmd or cwd.startswith(str(store)):
            found[int(d.name)] = cmd
    return found


@FUSE_ONLY
def test_a_sigkilled_harness_leaves_no_mount(redis_bin, store: Path) -> None:
    """The harness dies without teardown: its daemons die with it (PR_SET_PDEATHSIG) and
    fusermount3 takes each mount away (auto_unmount)."""
    argv = [*HARNESS, "run", "-b", "redis", "-n", "kill", "--nemesis-opt", "lose_unsynced=true"]
    p = subprocess.Popen(
        [*argv, "-t", "60", "--store", str(store)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(str(store) in m for m in syncfs.mounts()) and time.monotonic() < deadline:
            assert p.poll() is None, "the run ended before its servers were up"
            time.sleep(0.1)
        assert any(str(store) in m for m in syncfs.mounts())
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the servers too, which die with it and may still write
        if not any(str(store) in m for m in syncfs.mounts()) and not _processes_in(store):
            break
        time.sleep(0.1)
    assert not any(str(store) in m for m in syncfs.mounts())
    assert _daemons(store) == []
    assert _processes_in(store) == {}  # nothing left: the store can be removed
