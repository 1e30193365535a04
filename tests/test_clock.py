"""The clock shim on real processes: a Python probe of every libc clock entry, and redis-server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness.clock import (
    ClockShimError,
    build_shim,
    get_offset,
    offset_path,
    read_offset_ns,
    set_offset,
    shim_env,
    write_offset_ns,
)
from harness.runtime.base import Node, free_port, wait_until
from harness.runtime.redis import RedisServer

# Reads every clock entry point the shim covers (through ctypes, so through the dynamic linker
# like any C caller), together with the monotonic clock, which must never move.
PROBE = r"""
import ctypes, json, time

class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]

class Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

libc = ctypes.CDLL(None)
libc.time.restype = ctypes.c_long
tv, ts = Timeval(), Timespec()
libc.gettimeofday(ctypes.byref(tv), None)
libc.timespec_get(ctypes.byref(ts), 1)
print(json.dumps({
    "time.time": time.time(),
    "coarse": time.clock_gettime(5),  # CLOCK_REALTIME_COARSE
    "gettimeofday": tv.sec + tv.usec / 1e6,
    "time": libc.time(None),
    "timespec_get": ts.sec + ts.nsec / 1e9,
    "monotonic": time.clock_gettime(time.CLOCK_MONOTONIC),
    "maps": "clockshim-" in open("/proc/self/maps").read(),
}))
"""


def probe(env: dict[str, str]) -> tuple[float, dict, float, str]:
    """Real time before, what the probe saw, real time after, the probe's stderr."""
    before = time.time()
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return before, json.loads(out.stdout), time.time(), out.stderr


def assert_shifted(seen: dict, before: float, after: float, offset: float) -> None:
    # time() truncates to whole seconds; everything else must land inside the real window.
    for name in ("time.time", "coarse", "gettimeofday", "timespec_get"):
        assert before + offset - 0.05 <= seen[name] <= after + offset + 0.05, (name, seen)
    assert int(before + offset) - 1 <= seen["time"] <= after + offset, seen


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    d = tmp_path / "n1"
    d.mkdir()
    return d


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A node directory other users can reach (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="lockharness-clock-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def test_build_is_cached_by_source(tmp_path: Path) -> None:
    so = build_shim(tmp_path)
    stamp = so.stat().st_mtime_ns
    assert so.parent == tmp_path and so.name.startswith("clockshim-")
    assert build_shim(tmp_path) == so
    assert so.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [so.name]  # no temporary left behind


def test_build_without_gcc_names_gcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClockShimError, match="gcc not found"):
        build_shim(tmp_path / "cache")


def test_compile_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "shim.c"
    bad.write_text("int broken( {\n")
    monkeypatch.setattr("harness.clock.SOURCE", bad)
    with pytest.raises(ClockShimError) as err:
        build_shim(tmp_path / "cache")
    assert "gcc failed" in str(err.value) and "\n" not in str(err.value)
    assert not any((tmp_path / "cache").iterdir())


def test_offset_file_roundtrip(node_dir: Path) -> None:
    env = shim_env(node_dir)
    assert env["LOCKHARNESS_CLOCK_FILE"] == str(offset_path(node_dir))
    assert Path(env["LD_PRELOAD"]).is_file()
    assert offset_path(node_dir).stat().st_size == 8 and get_offset(node_dir) == 0.0
    set_offset(node_dir, -2.5)
    assert read_offset_ns(node_dir) == -2_500_000_000 and get_offset(node_dir) == -2.5
    shim_env(node_dir)  # a restart keeps the skewed clock
    assert get_offset(node_dir) == -2.5
    write_offset_ns(node_dir, -1)  # raw nanoseconds: all 64 bits round-trip
    assert read_offset_ns(node_dir) == -1
    write_offset_ns(node_dir, -2_500_000_000)
    for bad in (float("nan"), 1e12, "5"):
        with pytest.raises(ClockShimError, match="clock offset"):
            set_offset(node_dir, bad)  # type: ignore[arg-type]
    assert get_offset(node_dir) == -2.5


def test_every_libc_wall_clock_is_shifted(node_dir: Path) -> None:
    env = shim_env(node_dir)
    before, seen, after, _ = probe(env)
    assert seen["maps"]
    assert_shifted(seen, before, after, 0.0)

    set_offset(node_dir, 20)
    before, seen, after, _ = probe(env)
    assert_shifted(seen, before, after, 20.0)
    # The monotonic clock is one clock for every process on the machine: unmoved.
    assert abs(seen["monotonic"] - time.clock_gettime(time.CLOCK_MONOTONIC)) < 5

    set_offset(node_dir, -3600.25)  # sub-second negative offsets carry into tv_sec correctly
    before, seen, after, _ = probe(env)
    assert_shifted(seen, before, after, -3600.25)


def test_date_sees_offset(node_dir: Path) -> None:
    env = {**os.environ, **shim_env(node_dir)}
    set_offset(node_dir, 86400 * 2)
    out = subprocess.run(["date", "+%s"], env=env, capture_output=True, text=True, timeout=10)
    assert abs(int(out.stdout) - (time.time() + 86400 * 2)) <= 2


def test_missing_or_short_offset_file_means_no_offset(tmp_path: Path, node_dir: Path) -> None:
    so = str(build_shim())
    short = tmp_path / "short"
    short.write_bytes(b"\x01\x02")  # mapping it would SIGBUS on read: the shim must refuse
    for path in (str(tmp_path / "absent"), str(short), ""):
        before, seen, after, err = probe({"LD_PRELOAD": so, "LOCKHARNESS_CLOCK_FILE": path})
        assert seen["maps"]
        assert_shifted(seen, before, after, 0.0)
        assert ("wall clock not shifted" in err) == (path != "")  # said, not silently ignored


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a program as another uid")
def test_shim_loads_for_an_unprivileged_server_user(open_dir: Path) -> None:
    # Nodes may run under their own uid: the cached .so and the offset file must be readable
    # by it, or the loader skips the preload with a mere warning and the clock never moves.
    node_dir = open_dir
    env = {**os.environ, **shim_env(node_dir)}
    set_offset(node_dir, 86400)
    as_user = dict(env=env, capture_output=True, text=True, timeout=10, cwd="/")
    ids = dict(user=40199, group=40199, extra_groups=[])
    maps = subprocess.run(["cat", "/proc/self/maps"], **as_user, **ids)
    assert "clockshim-" in maps.stdout, f"shim not loaded for uid 40199: {maps.stderr}"
    out = subprocess.run(["date", "+%s"], **as_user, **ids)
    assert abs(int(out.stdout) - (time.time() + 86400)) <= 2


# -- redis-server ----------------------------------------------------------------------------


def start_redis(node_dir: Path) -> tuple[subprocess.Popen, redis.Redis]:
    kind = RedisServer()
    node = Node("n1", "127.0.0.1", free_port("127.0.0.1"), node_dir)
    kind.prepare(node, [node], fresh=True)
    with open(node.log_path, "ab") as log:
        proc = subprocess.Popen(
            kind.command(node, [node]),
            env={**os.environ, **shim_env(node_dir)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=node_dir,
        )
    node.proc = proc
    if not wait_until(lambda: not node.alive() or kind.ready(node), 10):
        proc.kill()
        proc.wait(10)
        pytest.fail(f"redis-server under the clock shim not ready: {node.log_path.read_text()}")
    assert node.alive(), f"redis-server died under the shim: {node.log_path.read_text()}"
    return proc, redis.Redis(host=node.host, port=node.port, socket_timeout=5)


def redis_time(r: redis.Redis) -> float:
    sec, usec = r.time()
    return sec + usec / 1e6


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_redis_clock_jump_expires_keys(redis_bin: None, node_dir: Path) -> None:
    proc, r = start_redis(node_dir)
    try:
        assert "clockshim-" in Path(f"/proc/{proc.pid}/maps").read_text()
        assert abs(redis_time(r) - time.time()) < 1

        r.set("lock", "p1", px=10_000)
        assert 9_000 < r.pttl("lock") <= 10_000
        set_offset(node_dir, 20)  # no restart: the running server reads the new offset
        assert abs(redis_time(r) - (time.time() + 20)) < 1
        assert r.pttl("lock") == -2 and r.get("lock") is None  # expired 10 s early in real time

        set_offset(node_dir, 0)
        assert abs(redis_time(r) - time.time()) < 1
        r.set("lock", "p2", px=10_000)
        assert r.get("lock") == b"p2"  # back on the real clock, keys live again
    finally:
        r.close()
        stop(proc)


def test_redis_clock_behind_keeps_keys_past_ttl(redis_bin: None, node_dir: Path) -> None:
    proc, r = start_redis(node_dir)
    try:
        r.set("lock", "p1", px=500)
        set_offset(node_dir, -20)  # the clock steps back after the key was set
        assert abs(redis_time(r) - (time.time() - 20)) < 1
        time.sleep(1.0)  # twice the TTL in real time
        assert r.get("lock") == b"p1" and r.pttl("lock") > 0
        set_offset(node_dir, 0)  # the clock catches up: the key is long overdue
        assert r.get("lock") is None
    finally:
        r.close()
        stop(proc)
