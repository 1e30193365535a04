"""Child processes die with the harness, even when it is SIGKILLed and cannot tear down.

``PR_SET_PDEATHSIG`` with SIGKILL makes the kernel kill the child when its parent dies; SIGKILL
also ends a child that is stopped (SIGSTOP, the client-pause nemesis), which would ignore any
other signal. The parent may die between fork and the prctl call: the child then already has a
new parent, sees it, and exits at once.

A Ctrl-C must not land between a child's start and the record of its pid either: teardown ends
children by the pids it recorded, and a child whose pid was lost would outlive the run
(``pid_recorded``).

What the kernel does not end (a server's own children, stopped or not) and what processes
leave behind them (SysV segments, data dirs) the run's guard removes (``Guard``, below), or
``harness doctor --clean`` when the guard is gone too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> None:
    """Call in the child right after fork; ``parent_pid`` is the forking process's pid (taken
    before the fork). Note the kernel watches the parent *thread* that forked."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)


@contextlib.contextmanager
def pid_recorded() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block (start a child, record its pid) and deliver them
    after it, to the handlers that were there: an interrupt inside ``Popen`` (which waits for
    the child's exec) would otherwise leave a child nobody knows the pid of. Handlers run in
    the main thread only, so elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    # A handler set outside Python (getsignal: None) cannot be put back: it is left alone.
    sigs = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if held:
            signal.raise_signal(held[0])  # as if it arrived now: the old handler decides


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root``, parents before children (read from /proc).

    A server's children may sit in sessions of their own (PostgreSQL's backends call setsid),
    so signalling the server's process group does not reach them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(0), []):
            if c not in found:
                found.append(c)
                todo.append(c)
    return found


# --- The run's guard: what a SIGKILLed harness cannot tear down itself ----------------------
#
# PR_SET_PDEATHSIG reaches only the harness's own children. A server's children (PostgreSQL's
# backends, each in a session of its own) are reparented to init when the server dies, and a
# paused one (SIGSTOP, the pause nemesis) never runs again to notice: it stays stopped forever,
# attached to its SysV segment, its namespace and its data dir kept. So every local runtime
# writes a state file (what it started: pids, node dirs) and starts a guard, a process in a
# session of its own that waits on a pipe only the harness holds. The pipe's end without the
# harness's "done" means the harness died: the guard continues and kills every process of the
# run, removes the SysV segments its servers made, the data dirs (unless --keep-data) and the
# state file. ``harness doctor --clean`` does the same for a state file whose owner and guard
# are both gone.

_DONE = b"done\n"
_GONE_WITHIN_S = 10.0
_IPC_RMID = 0
_MNT_DETACH = 2
_SHM_TABLE = Path("/proc/sysvipc/shm")


def state_dir(create: bool = True) -> Path | None:
    """Where runs' state files live: ``/run/lockharness`` as root, else a directory of this
    uid's own (``$XDG_RUNTIME_DIR/lockharness`` or ``/tmp/lockharness-UID``)."""
    if os.geteuid() == 0:
        d = Path("/run/lockharness")
    else:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        d = Path(base) / f"lockharness-{os.geteuid()}"
    if create:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return None
    # Someone else's directory (or a symlink) at our path: never trust what it holds.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"{d} is not a directory of uid {os.geteuid()}: remove it")
    return d


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks after boot): with the pid, it names one process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _alive(pid: int, ticks: int | None = None) -> bool:
    """Running or stopped (a zombie is dead); with ``ticks``, still the same process."""
    if _state(pid) in ("gone", "Z", "X"):
        return False
    return ticks is None or start_ticks(pid) == ticks


def _link(path: str) -> str:
    try:
        return os.readlink(path).removesuffix(" (deleted)")
    except OSError:
        return ""


@dataclass
class RunState:
    """What a local runtime started, enough to end it from another process."""

    path: str  # this state file
    owner: list  # [boot id, pid, start ticks] of the harness process
    servers_dir: str
    keep_data: bool
    guard: list | None = None  # [pid, start ticks] of the guard
    #: Each node's dir (real path) and, when the node's files live outside the store because
    #: its server's user cannot reach it, the store path that links to them.
    nodes: list[dict] = field(default_factory=list)
    #: Every server process started: pid, start ticks, its program, wall time of the start.
    procs: list[dict] = field(default_factory=list)
    outside: str | None = None  # the dir holding nodes that live outside the store

    def save(self) -> None:
        tmp = Path(self.path).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(self.path)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def owner_alive(self) -> bool:
        boot, pid, ticks = self.owner
        return boot == _boot_id() and _alive(pid, ticks)

    def guard_alive(self) -> bool:
        return self.guard is not None and _alive(*self.guard)


def _dirs(st: RunState) -> list[str]:
    return [n["dir"] for n in st.nodes]


def run_processes(st: RunState) -> list[int]:
    """Every live process of the run: the servers it recorded (still the same processes), their
    descendants, and orphans of them (reparented to init once their server died): a process
    running one of the run's server programs whose working directory is in one of its node
    dirs. Nothing else, so a shell sitting in a node dir is never touched."""
    found: list[int] = []
    for p in st.procs:  # no start time (gone before it was read): its pid proves nothing
        if p["start"] is not None and _alive(p["pid"], p["start"]) and p["pid"] not in found:
            found.append(p["pid"])
            found += [c for c in descendants(p["pid"]) if c not in found]
    exes = {p["exe"] for p in st.procs if p.get("exe")}
    dirs = [d.rstrip("/") + "/" for d in _dirs(st)]
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in found or int(entry) == me:
            continue
        cwd = _link(f"/proc/{entry}/cwd")
        if cwd and any((cwd + "/").startswith(d) for d in dirs):
            if _link(f"/proc/{entry}/exe") in exes and _alive(int(entry)):
                found.append(int(entry))
                found += [c for c in descendants(int(entry)) if c not in found]
    return found


def end_processes(pids: list[int]) -> list[int]:
    """Continue, then kill, every one of ``pids``; wait (bounded) until they are gone. A
    stopped process acts on nothing but SIGKILL and SIGCONT: continue it first, so whatever
    it does on the way out (a backend noticing its postmaster died) it does. Returns the ones
    still alive."""
    for sig in (signal.SIGCONT, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
    end = time.monotonic() + _GONE_WITHIN_S
    left = pids
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = [p for p in left if _alive(p)]
    return left


def shm_segments() -> list[dict[str, int]]:
    """The machine's SysV shared memory segments (``/proc/sysvipc/shm``)."""
    try:
        lines = _SHM_TABLE.read_text().splitlines()
    except OSError:
        return []
    head = lines[0].split() if lines else []
    rows = []
    for ln in lines[1:]:
        with contextlib.suppress(ValueError):
            rows.append(dict(zip(head, map(int, ln.split()), strict=False)))
    return rows


def run_segments(st: RunState, in_use: bool = False) -> list[dict[str, int]]:
    """SysV segments of the run's dead servers, with nothing attached: made by a server
    process it recorded (the creator pid, and a creation time not before that process
    started), or named by a node's ``postmaster.pid`` (PostgreSQL's own record of its
    segment: key and id, with the creator's pid). A segment of anyone else, or one in use, is
    never named (``in_use``: one still attached, by processes of the run, is named too)."""
    by_pid = {p["pid"]: p for p in st.procs}
    named = {k: pid for d in _dirs(st) for k, pid in _postmaster_segment(Path(d)).items()}
    found = []
    for seg in shm_segments():
        cpid = seg.get("cpid", -1)
        if (seg.get("nattch", 1) != 0 and not in_use) or _alive(
            cpid, by_pid.get(cpid, {}).get("start")
        ):
            continue
        p = by_pid.get(cpid)
        if p is not None and seg.get("ctime", 0) >= p["wall"] - 2:  # clock granularity
            found.append(seg)
        elif named.get((seg.get("key"), seg.get("shmid"))) == cpid:
            found.append(seg)
    return found


def _postmaster_segment(node_dir: Path) -> dict[tuple[int, int], int]:
    """{(key, shmid): postmaster pid} from the node's ``data/postmaster.pid`` (line 1 the pid,
    line 7 the segment's key and id); empty when there is none."""
    try:
        lines = (node_dir / "data" / "postmaster.pid").read_text().splitlines()
        key, shmid = lines[6].split()
        return {(int(key), int(shmid)): int(lines[0])}
    except (OSError, IndexError, ValueError):
        return {}


def orphan_runs() -> list[RunState]:
    """Runs with no state file (made before there were any, or lost) whose servers' processes
    outlived them: a process whose parent is gone (reparented to init), running a server
    program, whose working directory is a node dir of a run directory (``servers/<node>``
    beside ``config.json``). Each such run is described as a dead run's state, to be listed or
    cleaned the same way."""
    from .kinds import KINDS  # the kinds' modules import this one

    programs = {Path(k.binary).name for k in KINDS.values()}
    runs: dict[str, RunState] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _ppid(int(entry)) != 1:
            continue
        pid = int(entry)
        exe = _link(f"/proc/{pid}/exe")
        cwd = Path(_link(f"/proc/{pid}/cwd") or "/")
        if Path(exe).name not in programs:
            continue
        servers = next((a for a in cwd.parents if a.name == "servers"), None)
        if servers is None or not (servers.parent / "config.json").is_file():
            continue
        node = cwd.relative_to(servers).parts[0]
        st = runs.get(str(servers))
        if st is None:
            try:
                cfg = json.loads((servers.parent / "config.json").read_text())
            except (OSError, ValueError):
                cfg = {}
            keep = bool(cfg.get("keep_data", True)) if isinstance(cfg, dict) else True
            st = runs[str(servers)] = RunState("", ["", 0, None], str(servers), keep)
        if str(servers / node) not in _dirs(st):
            st.nodes.append({"dir": str(servers / node), "link": None})
        st.procs.append({"pid": pid, "start": start_ticks(pid), "exe": exe, "wall": 0})
    return list(runs.values())


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _data_dirs(st: RunState) -> list[Path]:
    if st.keep_data:
        return []
    return [Path(d) / "data" for d in _dirs(st) if (Path(d) / "data").exists()]


def _outside_nodes(st: RunState) -> list[dict]:
    return [n for n in st.nodes if n.get("link") and Path(n["dir"]).exists()]


def _mounts(st: RunState) -> list[str]:
    """Mount points inside the run's node dirs (a data dir on a filesystem of its own), deepest
    first."""
    dirs = _dirs(st)
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == d or point.startswith(d.rstrip("/") + "/") for d in dirs):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _netns_of(pids: list[int]) -> dict[str, int]:
    """The private network namespaces ``pids`` hold (the guard itself may be in one)."""
    mine = _link("/proc/1/ns/net") or _link("/proc/self/ns/net")
    held: dict[str, int] = {}
    for p in pids:
        ns = _link(f"/proc/{p}/ns/net")
        if ns and ns != mine:
            held[ns] = held.get(ns, 0) + 1
    return held


def leftovers(st: RunState) -> list[str]:
    """What the dead run ``st`` left, in words; nothing is changed."""
    said = []
    pids = run_processes(st)
    said += [_process(p) for p in pids]
    for ns, n in _netns_of(pids).items():
        said.append(f"network namespace {ns} (held by {n} of those processes)")
    said += [f"mount {m}" for m in _mounts(st)]
    for seg in run_segments(st, in_use=True):
        said.append(f"SysV shared memory segment {seg['shmid']} (key {seg['key']:#x})")
    for d in _data_dirs(st):
        said.append(f"data dir {d} ({_size(d) / 1e6:.1f} MB)")
    for n in _outside_nodes(st):
        said.append(f"node dir {n['dir']} (outside the store, belongs in {n['link']})")
    return said + ([f"state file {st.path}"] if st.path else [])


def _process(pid: int) -> str:
    """``process 123 (stopped: postgres: checkpointer)``"""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b"?"
    cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    return f"process {pid} ({'stopped' if _state(pid) in ('T', 't') else 'running'}: {cmd})"


def clean(st: RunState) -> tuple[list[str], list[str]]:
    """End everything the dead run ``st`` left and return (what was removed, what could not
    be). Safe to repeat, and safe beside a guard doing the same."""
    done: list[str] = []
    failed: list[str] = []
    pids = run_processes(st)
    held = _netns_of(pids)
    said = {p: _process(p) for p in pids}
    left = end_processes(pids)
    done += [f"ended {said[p]}" for p in pids if p not in left]
    failed += [f"{_process(p)} did not end" for p in left]
    if not left:
        done += [f"network namespace {ns} (its last processes ended)" for ns in held]
    for point in _mounts(st):
        if _libc.umount2(point.encode(), _MNT_DETACH) == 0:
            done.append(f"unmounted {point}")
        else:
            failed.append(f"mount {point}: {os.strerror(ctypes.get_errno())}")
    for seg in run_segments(st):
        if _libc.shmctl(seg["shmid"], _IPC_RMID, None) == 0:
            done.append(f"removed SysV shared memory segment {seg['shmid']} (key {seg['key']:#x})")
        elif ctypes.get_errno() != errno.EINVAL:  # EINVAL: someone removed it meanwhile
            failed.append(f"SysV segment {seg['shmid']}: {os.strerror(ctypes.get_errno())}")
    for d in _data_dirs(st):
        size = _size(d)
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            failed.append(f"data dir {d} could not be removed")
        else:
            done.append(f"removed data dir {d} ({size / 1e6:.1f} MB)")
    for n in _outside_nodes(st):
        try:
            there = Path(n["link"]).parent.is_dir()
            bring_back(Path(n["dir"]), Path(n["link"]))
            done.append(
                f"moved node dir {n['dir']} back into the store ({n['link']})"
                if there
                else f"removed node dir {n['dir']} (its store is gone)"
            )
        except OSError as e:
            failed.append(f"node dir {n['dir']}: {e}")
    if st.outside and not failed:
        shutil.rmtree(st.outside, ignore_errors=True)
    if not failed and st.path and os.path.exists(st.path):
        Path(st.path).unlink(missing_ok=True)
        done.append(f"removed state file {st.path}")
    return done, failed


def bring_back(real: Path, link: Path) -> None:
    """Put a node dir that lived outside the store (``real``) where the store links to it;
    when the store is gone meanwhile, there is nowhere to put it: it is removed."""
    if link.is_symlink():
        link.unlink()
    if not link.parent.is_dir():
        shutil.rmtree(real, ignore_errors=True)
    elif real.exists():
        shutil.move(str(real), str(link))


def stale_runs() -> list[RunState]:
    """Runs whose harness is gone and whose guard is gone too (a guard still alive is at work),
    then runs known only by their orphaned servers (``orphan_runs``)."""
    d = state_dir(create=False)
    found = [] if d is None else _stale_state_files(d)
    known = {st.servers_dir for st in found}
    return found + [st for st in orphan_runs() if st.servers_dir not in known]


def _stale_state_files(d: Path) -> list[RunState]:
    found = []
    for path in sorted(d.glob("run-*.json")):
        st = RunState.load(path)
        if st is not None and not st.owner_alive() and not st.guard_alive():
            found.append(st)
    return found


class Guard:
    """The run's state file and its guard process (see above); the harness side."""

    def __init__(self, servers_dir: Path, keep_data: bool) -> None:
        d = state_dir()
        assert d is not None
        pid = os.getpid()
        self.state = RunState(
            path=str(d / f"run-{pid}-{secrets.token_hex(4)}.json"),
            owner=[_boot_id(), pid, start_ticks(pid)],
            servers_dir=str(servers_dir),
            keep_data=keep_data,
        )
        self.state.save()
        import harness

        root = str(Path(harness.__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
        with pid_recorded():
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from harness.runtime.lifeline import guard_main; guard_main()",
                 self.state.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # never hold a pipe the harness's caller reads
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C is the harness's to handle
            )  # fmt: skip
            self.state.guard = [self.proc.pid, start_ticks(self.proc.pid)]
        self.state.save()

    def node(self, node_dir: Path, link: Path | None = None, outside: Path | None = None) -> None:
        self.state.nodes.append({"dir": str(node_dir), "link": str(link) if link else None})
        if outside is not None:
            self.state.outside = str(outside)
        self.state.save()

    def started(self, pid: int) -> None:
        """Record a server process right after its start (before anything can pause it)."""
        exe = _link(f"/proc/{pid}/exe")
        self.state.procs.append(
            {"pid": pid, "start": start_ticks(pid), "exe": exe, "wall": int(time.time())}
        )
        self.state.save()

    def close(self, done: bool = True) -> None:
        """``done``: the run tore down by itself, so the guard leaves, and so does the state
        file; else (teardown failed) the guard cleans up as after a SIGKILL."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                if done:
                    self.proc.stdin.write(_DONE)
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10 if done else 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if done:
            Path(self.state.path).unlink(missing_ok=True)


def guard_main() -> None:
    """The guard: clean up what earlier dead runs left (their guards killed too), then wait for
    the harness's pipe to end; without "done", clean its run up."""
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)
    _clean_stale_state_files(Path(sys.argv[1]))
    got = b""
    while _DONE not in got:  # "done" ends the wait at once, whoever else holds the pipe
        try:
            chunk = os.read(0, 64)
        except InterruptedError:
            continue
        if not chunk:
            break
        got += chunk
    if _DONE in got:
        return
    st = RunState.load(Path(sys.argv[1]))
    if st is None:
        return
    _clean_and_log(st)


_STALE_AFTER_S = 60  # a dead run stays for doctor to show this long before a run cleans it


def _clean_stale_state_files(mine: Path) -> None:
    """What the next run does for runs whose harness and guard both died: clean them as
    ``doctor --clean`` would (only those with state files: ours by record)."""
    for path in sorted(mine.parent.glob("run-*.json")):
        st = RunState.load(path)
        if path == mine or st is None or st.owner_alive() or st.guard_alive():
            continue
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime >= _STALE_AFTER_S:
                _clean_and_log(st)


def _clean_and_log(st: RunState) -> None:
    done, failed = clean(st)
    with contextlib.suppress(OSError), open(Path(st.servers_dir) / "lifeline.log", "a") as f:
        f.write("".join(f"{t}\n" for t in done) + "".join(f"left: {t}\n" for t in failed))


def close_guarded(guard: Guard | None, teardown: Callable[[], None]) -> None:
    """Run a runtime's teardown, then tell its guard it is done; when the teardown fails, the
    guard is told so and ends (and moves back) what is left."""
    try:
        teardown()
    except BaseException:
        if guard is not None:
            guard.close(done=False)
        raise
    if guard is not None:
        guard.close()
