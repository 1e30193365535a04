"""A SIGKILLed run leaves the machine as it found it.

Each test starts a real ``harness run``, waits for the worst moment (the server paused, or
serving with data written), SIGKILLs it, and then finds none of the run's processes (ps), SysV
segments (``/proc/sysvipc/shm``), data dirs or network namespaces: removed by the run's guard
(``harness.runtime.lifeline``), or, when the guard is killed too, listed by ``harness doctor``
and removed by ``harness doctor --clean``. As root, PostgreSQL and MariaDB run as their own
users under a store in a 0700 directory, which keeps its mode.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import HARNESS, ROOT, descendants, harness, need_server, pid_alive, proc_rows

START_TIMEOUT_S = 90  # a loaded machine starts servers slowly
GONE_WITHIN_S = 30
WIDE = {"COLUMNS": "500"}  # doctor's table: a path on one line


def _segments(since: float = 0.0) -> dict[int, int]:
    """{shmid: creator pid} of the machine's SysV shared memory segments, those created (or
    last changed) at ``since`` (epoch seconds) or later: a segment an older server left behind
    may name a creator pid that a process of this run has since been given."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(x[1]): int(x[4]) for x in map(str.split, lines) if int(x[13]) >= since}


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _holders(namespaces: set[str]) -> set[int]:
    return {p for p in proc_rows() if _netns(p) in namespaces}


def _history(run_dir: Path) -> list[dict]:
    try:
        lines = (run_dir / "history.jsonl").read_text().splitlines()
    except OSError:
        return []
    return [json.loads(ln) for ln in lines if ln.endswith("}")]


@dataclass
class Killed:
    """What a run held when it was SIGKILLed."""

    run_dir: Path
    state: dict  # its state file (lifeline.RunState)
    victims: set[int] = field(default_factory=set)  # every process of the run
    segments: set[int] = field(default_factory=set)  # SysV segments its servers made
    namespaces: set[str] = field(default_factory=set)
    data_dirs: list[Path] = field(default_factory=list)

    def left(self) -> dict[str, object]:
        gone = {
            "processes": {p: proc_rows().get(p, ("?",))[0] for p in self.victims if pid_alive(p)},
            "segments": self.segments & set(_segments()),
            "namespaces": self.namespaces if _holders(self.namespaces) else set(),
            "data dirs": [d for d in self.data_dirs if d.exists()],
            "state file": Path(self.state["path"]).exists(),
        }
        return {k: v for k, v in gone.items() if v}

    def wait_clean(self) -> dict[str, object]:
        end = time.monotonic() + GONE_WITHIN_S
        while self.left() and time.monotonic() < end:
            time.sleep(0.2)
        return self.left()

    def end_victims(self) -> None:
        """Ours, by pid: never leave a stopped process behind a failed test."""
        for p in self.victims:
            if pid_alive(p):
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    os.kill(p, sig)


def _state_file(harness_pid: int) -> dict | None:
    from harness.runtime.lifeline import state_dir

    d = state_dir(create=False)
    for f in d.glob(f"run-{harness_pid}-*.json") if d else []:
        return json.loads(f.read_text())
    return None


def _kill_run(
    store: Path, args: list[str], ready: Callable[[Path, set[int]], bool], guard_too: bool
) -> Killed:
    """Start ``harness run``, wait until ``ready(run dir, its processes)``, SIGKILL it (and its
    guard first, when ``guard_too``: a run whose guard died as well)."""
    started = int(time.time()) - 1  # /proc/sysvipc/shm's ctime is in whole seconds
    proc = subprocess.Popen(
        [*HARNESS, "run", *args, "--store", str(store), "--no-report"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    victims: set[int] = set()
    killed = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            victims |= descendants(proc.pid)
            found = list(store.glob("*/*/config.json"))
            if found and ready(found[0].parent, victims):
                break
            assert time.monotonic() < deadline, "the run never reached the moment to kill it"
            time.sleep(0.05)
        victims |= descendants(proc.pid)
        state = _state_file(proc.pid)
        assert state is not None, "the run wrote no state file"
        run_dir = found[0].parent
        killed = Killed(run_dir, state, victims)
        killed.segments = {i for i, cpid in _segments(started).items() if cpid in victims}
        host = _netns(os.getpid())
        killed.namespaces = {n for p in victims if (n := _netns(p)) and n != host}
        killed.data_dirs = [Path(n["dir"]) / "data" for n in state["nodes"]]
        assert all(d.exists() for d in killed.data_dirs)
        if guard_too:
            os.kill(state["guard"][0], signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return killed
    except BaseException:
        if killed is None:
            Killed(store, {}, victims).end_victims()
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def closed_store() -> Iterator[tuple[Path, Path]]:
    """(D, a store under it): D is 0700, so PostgreSQL's and MariaDB's users (as root) cannot
    reach the store; the harness must not open D up."""
    with tempfile.TemporaryDirectory(prefix="lockharness-closed-") as d:
        os.chmod(d, 0o700)
        yield Path(d), Path(d) / "inner" / "store"


def _mode(d: Path) -> str:
    return stat.filemode(d.stat().st_mode)


def test_sigkill_while_postgres_is_paused_leaves_nothing(closed_store) -> None:
    """The reported leak: the paused postmaster's children stayed stopped forever (state T,
    parent 1), attached to the run's SysV segment, keeping its namespace and data. The guard
    continues and kills them, removes the segment and the data dir."""
    need_server("postgres")
    d, store = closed_store
    assert _mode(d) == "drwx------"
    # A pause lasts the interval: 3 s leave the kill well inside it on a loaded machine.
    args = ["-b", "postgres-lease", "-n", "pause", "--nemesis-interval", "3", "--seed", "111"]
    args += ["-t", "60", "-c", "3", "--keys", "1"]

    def paused(run_dir: Path, pids: set[int]) -> bool:
        ops = _history(run_dir)
        started = [o for o in ops if o["f"] == "start-pause" and o["type"] == "info"]
        stopped = [p for p in pids if proc_rows().get(p, ("?",))[0] == "T"]
        return bool(started) and len(stopped) >= 3  # the postmaster and its children

    killed = _kill_run(store, args, paused, guard_too=False)
    try:
        assert killed.segments, "a running PostgreSQL has a SysV segment"
        assert killed.wait_clean() == {}, f"left {GONE_WITHIN_S} s after SIGKILL"
        assert _mode(d) == "drwx------"
        log = (killed.run_dir / "servers" / "lifeline.log").read_text()
        assert "stopped" in log and "SysV" in log and "data dir" in log, log
        node = killed.run_dir / "servers" / "postgres-n1"
        assert not node.is_symlink() and (node / "server.log").exists()
    finally:
        killed.end_victims()


def test_doctor_lists_and_cleans_a_dead_etcd_run(store: Path) -> None:
    """A run whose guard died too: its etcd data dirs (hundreds of MB after seconds) are listed
    by ``doctor`` and removed by ``doctor --clean``, which lists what it removed."""
    need_server("etcd")
    args = ["-b", "etcd", "-t", "60", "-c", "2", "--keys", "1"]

    def serving(run_dir: Path, pids: set[int]) -> bool:
        return sum(o["f"] == "acquire" and o["type"] == "ok" for o in _history(run_dir)) >= 3

    killed = _kill_run(store, args, serving, guard_too=True)
    try:
        time.sleep(1)  # a SIGKILLed guard cleans nothing: the data stays
        assert killed.left().get("data dirs"), killed.left()
        listed = harness("doctor", env=WIDE)
        for d in killed.data_dirs:
            assert f"data dir {d}" in listed.stdout, listed.stdout[-3000:]
        cleaned = harness("doctor", "--clean", env=WIDE)
        for d in killed.data_dirs:
            assert f"removed data dir {d}" in cleaned.stdout, cleaned.stdout + cleaned.stderr
        assert killed.wait_clean() == {}
        again = harness("doctor", env=WIDE)
        assert str(killed.run_dir) not in again.stdout
    finally:
        killed.end_victims()


def test_doctor_cleans_a_dead_mariadb_run_outside_a_closed_store(closed_store) -> None:
    """mysql-lease as root under a 0700 directory: the node lives outside the store (the mysql
    user cannot reach it) and the directory keeps its mode; after a SIGKILL of the run and its
    guard, ``doctor --clean`` ends the server, removes its data and moves the node's dir
    (its log) back into the store."""
    need_server("mariadb")
    d, store = closed_store
    assert _mode(d) == "drwx------"
    args = ["-b", "mysql-lease", "-t", "60", "-c", "2", "--keys", "1"]

    def serving(run_dir: Path, pids: set[int]) -> bool:
        return any(o["f"] == "acquire" and o["type"] == "ok" for o in _history(run_dir))

    killed = _kill_run(store, args, serving, guard_too=True)
    try:
        assert _mode(d) == "drwx------"
        outside = killed.state.get("outside")
        if os.geteuid() == 0:
            assert outside and not outside.startswith(str(d)), killed.state
        cleaned = harness("doctor", "--clean", env=WIDE)
        assert "removed data dir" in cleaned.stdout, cleaned.stdout + cleaned.stderr
        assert killed.wait_clean() == {}
        node = killed.run_dir / "servers" / "mariadb-n1"
        assert not node.is_symlink() and (node / "server.log").exists()
        assert not (outside and Path(outside).exists())
        assert _mode(d) == "drwx------"
    finally:
        killed.end_victims()


@pytest.fixture(scope="module")
def closed_run() -> Iterator[tuple[Path, Path]]:
    """A short postgres-lease run stored under a 0700 directory: (D, the run's dir)."""
    need_server("postgres")
    with tempfile.TemporaryDirectory(prefix="lockharness-closed-") as d:
        os.chmod(d, 0o700)
        store = Path(d) / "inner" / "store"
        p = harness("run", "-b", "postgres-lease", "-t", "2", "--store", str(store), "--no-report")
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        yield Path(d), next(store.glob("*/*/config.json")).parent


def test_a_postgres_run_leaves_the_store_parents_modes(closed_run) -> None:
    """``mkdir -m 700 D && harness run -b postgres-lease --store D/inner/store`` left D as
    drwx-----x (as root the server runs as postgres, and the harness opened D up for it)."""
    d, run_dir = closed_run
    assert _mode(d) == "drwx------"
    node = run_dir / "servers" / "postgres-n1"
    assert not node.is_symlink() and (node / "server.log").exists()
    assert not (node / "data").exists()  # removed at the end, as without --keep-data


def test_compare_out_dev_null_writes_nothing(closed_run, tmp_path: Path) -> None:
    """``--out /dev/null`` made /dev/null.json, .csv and .md: now it writes no page and no
    exports; another path that is not a regular file is refused in one line."""
    _, run_dir = closed_run
    beside = [Path(os.devnull + s) for s in (".json", ".csv", ".md", "-runs")]
    assert not any(p.exists() for p in beside), "left by an earlier run of compare"
    p = harness("compare", str(run_dir), "--out", os.devnull)
    assert p.returncode == 0, p.stderr
    assert "not written" in p.stdout
    assert not any(p.exists() for p in beside)
    fifo = tmp_path / "page"
    os.mkfifo(fifo)
    p = harness("compare", str(run_dir), "--out", str(fifo))
    assert p.returncode == 2 and "not a regular file" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not any(tmp_path.glob("page.*"))
    p = harness("compare", str(run_dir), "--out", os.devnull, "--publish-reports", "all")
    assert p.returncode == 2 and "--out /dev/null writes none" in p.stderr, p.stderr
    assert not any(p.exists() for p in beside)


def test_doctor_unmounts_a_mount_in_a_dead_runs_node_dir(store: Path) -> None:
    """A node's data dir on a filesystem of its own (a mount) outlives a SIGKILLed run and its
    guard: ``doctor`` lists it, ``doctor --clean`` unmounts it and removes the data dir."""
    from harness.runtime.lifeline import RunState, _boot_id, start_ticks, state_dir

    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    dead = subprocess.Popen(["true"])
    ticks = start_ticks(dead.pid)
    dead.wait(10)  # a harness that is gone
    node = store / "run" / "servers" / "redis-n1"
    (node / "data").mkdir(parents=True)
    assert subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(node / "data")]).returncode == 0
    st = RunState(
        str(state_dir() / f"run-{dead.pid}-test.json"), [_boot_id(), dead.pid, ticks],
        str(node.parent), keep_data=False, nodes=[{"dir": str(node), "link": None}],
    )  # fmt: skip
    st.save()
    try:
        listed = harness("doctor", env=WIDE)
        assert f"mount {node / 'data'}" in listed.stdout, listed.stdout[-3000:]
        cleaned = harness("doctor", "--clean", env=WIDE)
        assert f"unmounted {node / 'data'}" in cleaned.stdout, cleaned.stdout + cleaned.stderr
        assert f"removed data dir {node / 'data'}" in cleaned.stdout
        assert not (node / "data").exists() and not Path(st.path).exists()
    finally:
        subprocess.run(["umount", "-l", str(node / "data")], capture_output=True)
        Path(st.path).unlink(missing_ok=True)


def test_the_next_run_cleans_what_a_dead_run_and_its_guard_left(store: Path) -> None:
    """A run whose harness and guard were both killed a while ago: the next run's guard
    removes its data dir and state file, without ``doctor --clean``."""
    from harness.runtime import LocalRuntime
    from harness.runtime.lifeline import RunState, _boot_id, start_ticks, state_dir

    need_server("redis")
    dead = subprocess.Popen(["true"])
    ticks = start_ticks(dead.pid)
    dead.wait(10)
    node = store / "dead" / "servers" / "redis-n1"
    (node / "data").mkdir(parents=True)
    (node / "data" / "dump.rdb").write_bytes(b"x" * 1000)
    st = RunState(
        str(state_dir() / f"run-{dead.pid}-test.json"), [_boot_id(), dead.pid, ticks],
        str(node.parent), keep_data=False, nodes=[{"dir": str(node), "link": None}],
    )  # fmt: skip
    st.save()
    old = time.time() - 120  # died two minutes ago: doctor had its time to show it
    os.utime(st.path, (old, old))
    try:
        with LocalRuntime(store / "next") as rt:
            rt.start("redis", 1)
            end = time.monotonic() + GONE_WITHIN_S
            while Path(st.path).exists() and time.monotonic() < end:
                time.sleep(0.1)
        assert not (node / "data").exists() and not Path(st.path).exists()
        assert "removed data dir" in (node.parent / "lifeline.log").read_text()
    finally:
        Path(st.path).unlink(missing_ok=True)
