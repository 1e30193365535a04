"""A Docker engine for a run: the user's (``DOCKER_HOST`` or a URL), or a private one.

A private engine never touches the host's network: ``dockerd`` runs inside a network namespace
made for it (``ip netns add lh-docker-<pid>-<token>``, only ``lo`` up) with
``--bridge=none --iptables=false --ip-masq=false``, its own data root, exec root, socket, pid
file and cgroup parent. Containers use ``network_mode="host"``, i.e. that namespace, and listen
on 127.0.0.x there only; the harness joins the namespace (setns) to reach them.
(``ip netns exec`` cannot start dockerd: it remounts /sys and dockerd finds no devices cgroup.)

Every private engine writes a state file under ``/run/lockharness-docker`` naming its owner
(boot id, pid, start time), dockerd's pid and its dirs. Teardown stops dockerd by that pid,
unmounts what it left under its dirs, deletes the namespace and the dirs. An engine whose owner
died (a SIGKILLed harness) is torn down the same way by the next start or
``harness doctor --clean``. Containers carry the labels ``lockharness.run`` and
``lockharness.owner`` so that leftovers in a user's engine are found the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..net.netns import tool
from ..runtime.base import ServerStartError, wait_until
from ..runtime.lifeline import pid_recorded

STATE_DIR = Path("/run/lockharness-docker")
DATA_BASE = Path("/var/lib/lockharness-docker")
LABEL_RUN = "lockharness.run"
LABEL_OWNER = "lockharness.owner"
PRIVATE = "private"
_READY_S = 60.0
_STOP_S = 20.0
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class EngineError(ServerStartError):
    """The Docker engine could not be reached or started; one line for the user."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_token(pid: int | None = None) -> str:
    """Names a live process on this boot: ``boot_id:pid:start_time`` (pids are reused)."""
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{_start_time(pid)}"


def owner_alive(token: str) -> bool:
    """Is the process a token names still running? A token of another boot is dead; a token
    that is not ours to judge (unparsable) counts as alive, so nothing of others is removed."""
    try:
        boot, pid, start = token.split(":")
        pid_i = int(pid)
    except ValueError:
        return True
    if boot != _boot_id():
        return False
    return _start_time(pid_i) == start


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def _end(pid: int, marker: str, timeout: float) -> None:
    """SIGTERM, then SIGKILL, a process whose command line names ``marker`` (never one that
    reused the pid)."""
    if not any(marker in a for a in _cmdline(pid)):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_until(lambda: not _alive(pid), wait, interval=0.05):
            return


def _mounts_under(roots: list[Path]) -> list[str]:
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
                found.append(point)
    return sorted(found, key=len, reverse=True)  # deepest first


def _unmount(point: str) -> None:
    if _libc.umount2(point.encode(), _MNT_DETACH) != 0:
        e = ctypes.get_errno()
        raise EngineError(f"cannot unmount {point}: {os.strerror(e)}")


def _netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def _ip(*args: str) -> None:
    p = subprocess.run([tool("ip"), *args], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise EngineError(f"ip {' '.join(args)}: {p.stderr.strip()}")


@dataclass
class EngineState:
    """What a private engine owns: enough to tear it down from another process."""

    name: str  # also its network namespace's name
    owner: str
    data_root: str
    exec_root: str
    dockerd_pid: int | None = None

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.name}.json"

    @property
    def socket(self) -> str:
        return f"{self.exec_root}/docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cgroup_parent(self) -> str:
        return self.name

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        tmp.replace(self.path)

    @classmethod
    def load(cls, path: Path) -> EngineState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def available() -> tuple[bool, str]:
    """Can this process start a private engine? (yes, or why not)"""
    if os.geteuid() != 0:
        return False, "not root: a private Docker engine needs root (network namespaces)"
    if not os.path.exists("/proc/self/ns/net"):
        return False, "not Linux"
    for prog, pkg in (("dockerd", "docker.io"), ("nsenter", "util-linux")):
        if shutil.which(prog) is None and shutil.which(prog, path="/usr/sbin:/sbin") is None:
            return False, f"{prog} not found: apt-get install -y {pkg}"
    return True, "root on Linux, dockerd installed"


class PrivateEngine:
    """dockerd in a network namespace of its own; ``close()`` leaves nothing behind."""

    private = True  # no network beyond loopback: never pulls

    def __init__(self, data_base: Path = DATA_BASE) -> None:
        ok, why = available()
        if not ok:
            raise EngineError(f"cannot start a private Docker engine: {why}")
        name = f"lh-docker-{os.getpid()}-{secrets.token_hex(3)}"
        self.state = EngineState(
            name=name,
            owner=owner_token(),
            data_root=str(Path(data_base) / name),
            exec_root=str(STATE_DIR / name),
        )
        self.proc: subprocess.Popen | None = None
        self._client: Any = None

    @property
    def url(self) -> str:
        return self.state.url

    @property
    def netns(self) -> str:
        return self.state.name

    def start(self) -> PrivateEngine:
        st = self.state
        st.save()  # first: whatever follows can be found and undone by a later clean
        try:
            _ip("netns", "add", st.name)
            _ip("-n", st.name, "link", "set", "lo", "up")
            Path(st.data_root).mkdir(parents=True, exist_ok=True)
            Path(st.exec_root).mkdir(parents=True, exist_ok=True)
            log = open(Path(st.exec_root) / "dockerd.log", "ab")
            argv = [
                shutil.which("nsenter") or "nsenter",
                f"--net=/run/netns/{st.name}",
                shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin") or "dockerd",
                "--bridge=none", "--iptables=false", "--ip-masq=false",
                "--data-root", st.data_root,
                "--exec-root", st.exec_root,
                "--cgroup-parent", st.cgroup_parent,
                "-H", st.url,
                "-p", f"{st.exec_root}/dockerd.pid",
                "--log-level", "warn",
            ]  # fmt: skip
            # No PDEATHSIG here (teardown removes the containers before it stops dockerd), so
            # its pid must be in the state file before a Ctrl-C can stop the start.
            with pid_recorded():
                try:
                    # Its own session: a terminal's Ctrl-C reaches only the harness, which then
                    # removes the containers before it stops dockerd.
                    self.proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )  # fmt: skip
                finally:
                    log.close()
                st.dockerd_pid = self.proc.pid
                st.save()
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        import docker

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise EngineError(
                    f"dockerd exited with code {self.proc.returncode} at start: "
                    f"{_tail(Path(self.state.exec_root) / 'dockerd.log')}"
                )
            try:  # the client asks the engine's API version as it is made
                self._client = docker.DockerClient(base_url=self.url, timeout=120)
                return bool(self._client.ping())
            except Exception:
                return False

        if not wait_until(up, _READY_S, interval=0.1):
            raise EngineError(f"dockerd did not answer within {_READY_S:.0f} s")

    @property
    def client(self) -> Any:
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        teardown(self.state)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=1)  # reap it (teardown ended it by pid)

    def __enter__(self) -> PrivateEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def teardown(st: EngineState) -> list[str]:
    """Undo everything a private engine made, in order; safe to repeat. Returns what it did."""
    done: list[str] = []
    pid = st.dockerd_pid
    if pid is not None and _alive(pid) and any(st.exec_root in a for a in _cmdline(pid)):
        try:
            import docker

            client = docker.DockerClient(base_url=st.url, timeout=30)
            try:
                for c in client.containers.list(all=True):
                    c.remove(force=True)
                    done.append(f"container {c.name}")
            finally:
                client.close()
        except Exception:
            pass  # dockerd stops (and kills) what is left below
        _end(pid, st.exec_root, _STOP_S)
        done.append(f"dockerd {pid}")
    # A dockerd that died hard may leave its containerd, shims and containers: all carry the
    # exec root on their command line or sit in the engine's own cgroup.
    for p in _procs_naming(st.exec_root):
        _end(p, st.exec_root, 5.0)
        done.append(f"process {p}")
    for p in _cgroup_procs(st.cgroup_parent):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
        done.append(f"process {p}")
    _remove_cgroups(st.cgroup_parent)
    failed: list[str] = []  # every step is tried; the first failure is said at the end
    for point in _mounts_under([Path(st.exec_root), Path(st.data_root)]):
        try:
            _unmount(point)
            done.append(f"mount {point}")
        except EngineError as e:
            failed.append(str(e))
    if _netns_exists(st.name):
        try:
            _ip("netns", "delete", st.name)
            done.append(f"namespace {st.name}")
        except EngineError as e:
            failed.append(str(e))
    if failed:  # keep the state file: a later clean tries again
        raise EngineError(f"tearing down {st.name}: {failed[0]}")
    for d in (st.data_root, st.exec_root):
        if os.path.exists(d):
            shutil.rmtree(d, ignore_errors=True)
    st.path.unlink(missing_ok=True)
    return done


def _procs_naming(marker: str) -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and any(marker in a for a in _cmdline(int(entry))):
            found.append(int(entry))
    return found


def _cgroup_dirs(parent: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    dirs = [base / parent]  # cgroup v2
    with contextlib.suppress(OSError):
        dirs += [c / parent for c in base.iterdir() if c.is_dir()]
    return [d for d in dirs if d.is_dir()]


def _cgroup_procs(parent: str) -> list[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs(parent):
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
        # A frozen (paused) container ignores SIGKILL until thawed.
        for state in d.rglob("freezer.state"):
            with contextlib.suppress(OSError):
                state.write_text("THAWED")
    return sorted(pids)


def _remove_cgroups(parent: str) -> None:
    for d in _cgroup_dirs(parent):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()


def stale_engines() -> list[EngineState]:
    """Private engines whose owner is gone (a SIGKILLed harness)."""
    if not STATE_DIR.is_dir():
        return []
    found = []
    for path in sorted(STATE_DIR.glob("lh-docker-*.json")):
        st = EngineState.load(path)
        if st is not None and not owner_alive(st.owner):
            found.append(st)
    return found


def clean_stale() -> list[str]:
    """Tear down every private engine whose owner died, and remove leftover containers of
    dead runs from the user's engine when one is configured. Returns what was removed."""
    done = []
    for st in stale_engines():
        done += [f"{st.name}: {d}" for d in teardown(st)] or [f"{st.name}: state file"]
    return done


def remove_leftovers(client: Any) -> list[str]:
    """Containers of runs whose harness died (label ``lockharness.owner`` names a dead
    process), in a user's engine; containers of live runs and of other tools are kept."""
    removed = []
    for c in client.containers.list(all=True, filters={"label": LABEL_RUN}):
        owner = c.labels.get(LABEL_OWNER, "")
        if owner and not owner_alive(owner):
            c.remove(force=True)
            removed.append(c.name)
    return removed


@dataclass
class Engine:
    """The engine a run's containers live in, and the namespace they listen in (None: the
    host's own, for a user's engine)."""

    client: Any
    netns: str | None
    url: str
    private: bool = False  # a private engine has no network beyond loopback: it never pulls


@contextlib.contextmanager
def open_engine(host: str | None, netns: str | None = None, tidy: bool = True) -> Iterator[Engine]:
    """``host``: ``private`` (start one, torn down on leaving), a URL, or None for the
    environment's (``DOCKER_HOST`` or the default socket). ``tidy``: first remove containers
    of dead runs from a user's engine."""
    import docker

    if host == PRIVATE:
        clean_stale()
        with PrivateEngine() as eng:
            yield Engine(eng.client, eng.netns, eng.url, private=True)
        return
    try:
        client = (
            docker.DockerClient(base_url=host, timeout=120)
            if host
            else docker.from_env(timeout=120)
        )
        client.ping()
    except Exception as e:
        where = host or os.environ.get("DOCKER_HOST") or "the default socket"
        raise EngineError(
            f"no Docker engine answers at {where} ({type(e).__name__}); give --docker-host "
            "URL, or --docker-host private (root on Linux with docker.io installed)"
        ) from None
    if netns is not None and not _netns_exists(netns):
        raise EngineError(f"--docker-netns {netns}: no such namespace under /run/netns")
    try:
        if tidy:
            remove_leftovers(client)
        yield Engine(client, netns, host or os.environ.get("DOCKER_HOST", "default"))
    finally:
        client.close()


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return (lines[-1] if lines else "(empty log)")[-300:]
