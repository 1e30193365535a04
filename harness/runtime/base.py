"""Server kinds, nodes, clusters and the one runtime interface.

A ``ServerKind`` knows one server program (redis-server, etcd, ZooKeeper, PostgreSQL ...) and
every fact the runtimes need of it: the Debian package that ships it, the argv to start one
node of a cluster, a readiness probe, and for containers its image recipe, its official image
and its compose service names. A ``Runtime`` turns a kind and a node count into a running
``Cluster``, whose node operations (start, kill, pause, resume, stop) the run and the nemeses
call. Three runtimes are peers behind it: ``LocalRuntime`` (processes, ``local.py``),
``DockerRuntime`` (containers it starts, ``harness/containers/docker_runtime.py``) and
``ComposeRuntime`` (a compose project's containers, ``harness/containers/compose.py``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from backends.errors import LockHarnessError

from .durability import Durability


class ServerStartError(LockHarnessError, RuntimeError):
    """A server could not be started; the message is one line for the user."""


class MissingBinary(ServerStartError):
    pass


@dataclass
class Node:
    """One server process of a cluster, on its own loopback address."""

    name: str  # n1, n2, ...
    host: str  # 127.0.0.x it listens on
    port: int  # the client port
    dir: Path  # data and logs live here
    extra_ports: dict[str, int] = field(default_factory=dict)  # peer, election, ...
    proc: Any = None  # subprocess.Popen while running
    paused: bool = False
    uid: int | None = None  # its own uid, so iptables can tell its packets from its peers'
    clock: bool = False  # started under the clock shim

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass(frozen=True)
class ImageRecipe:
    """How ``harness images build`` makes a kind's image from Debian packages, with no
    registry (``harness/containers/images.py``)."""

    packages: tuple[str, ...]
    #: Dirs (globs inside the image) put before the system PATH, so the server's programs are
    #: found by name as in the official images (PostgreSQL's live in a versioned dir).
    path_globs: tuple[str, ...] = ()
    #: Files written into the tree before apt-get runs (e.g. no default PostgreSQL cluster).
    files: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class ServerKind(ABC):
    """One server program, e.g. redis-server, with all its facts."""

    kind: ClassVar[str]
    package: ClassVar[str]  # the Debian package that ships the binary
    binary: ClassVar[str]  # looked up on PATH (or absolute)
    extra_port_names: ClassVar[tuple[str, ...]] = ()
    ready_timeout: ClassVar[float] = 15.0
    #: Run as this user (PostgreSQL refuses root); None = as the harness.
    user: ClassVar[str | None] = None
    #: Does the server read its clock through libc (so the clock shim can move it)?
    libc_clock: ClassVar[bool] = True
    #: How teardown asks a node to stop; SIGKILL where data is throwaway and a polite stop
    #: is slow (an etcd leader keeps handing over leadership to peers that are stopping).
    stop_signal: ClassVar[int] = signal.SIGTERM
    #: Can the Docker runtime start it (same argv, with the image's binary found by name)?
    in_containers: ClassVar[bool] = False
    #: The image ``harness images build`` makes for it (None: no recipe).
    image_recipe: ClassVar[ImageRecipe | None] = None
    #: The official image the Docker runtime uses when no --image is given for the kind.
    official_image: ClassVar[str | None] = None
    #: Compose service-name prefixes (``redis`` for redis1, redis2 ...) and the client port a
    #: service without lockharness labels publishes; no names: no compose service.
    compose_names: ClassVar[tuple[str, ...]] = ()
    client_port: ClassVar[int | None] = None
    #: The harness's own helper (the proxy): a local process beside every runtime's servers,
    #: never in a container.
    helper: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}
        #: Set by the Docker runtime: the binary is the image's, found on its PATH by name,
        #: and ``prepare`` must not rely on programs of the host.
        self.container = False

    def durability(self) -> Durability:
        """What the server runs with, and what a process kill can lose of acknowledged writes
        (see ``durability.py``); every kind that keeps data says so."""
        return Durability("keeps no data")

    def find_binary(self) -> str:
        if self.container:
            return self.binary
        path = shutil.which(self.binary)
        if path is None:
            raise MissingBinary(
                f"{self.binary} not found: install the Debian package {self.package} "
                f"(apt-get install -y {self.package})"
            )
        return path

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:  # noqa: B027
        """Write config files and data directories before (re)starting ``node``."""

    @abstractmethod
    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        """argv that runs ``node`` in the foreground."""

    def env(self, node: Node) -> dict[str, str]:
        return {}

    def container_command(self, node: Node, cluster: list[Node]) -> list[str]:
        """argv inside a container: the node's dir is mounted at the same path, so the local
        argv holds (its binary is looked up on the image's PATH)."""
        return self.command(node, cluster)

    def container_problem(self) -> str | None:
        """Why this kind (with these options) cannot run in a container; None: it can."""
        if not self.in_containers:
            return f"server kind {self.kind} does not run in containers yet"
        return None

    def version(self, node: Node) -> str | None:
        """The server version the running node reports (None: it cannot say)."""
        return None

    def ready(self, node: Node) -> bool:
        """Cheap probe: does the node answer? Default: its client port accepts."""
        return port_open(node.host, node.port)

    def after_kill(self, node: Node, cluster: list[Node]) -> dict[str, Any] | None:
        """Called by the kill nemesis once ``node`` is dead: what the cluster's own machinery
        would do next (promote a replica ...); the returned dict goes into the history."""
        return None

    def cluster_ready(self, cluster: list[Node]) -> bool:
        """Whole-cluster readiness (quorum formed ...); default: every node ready."""
        return all(self.ready(n) for n in cluster)


def node_names(n_nodes: int, prefix: str = "n") -> list[str]:
    """The names a cluster's nodes get (also known before start, for checking targets): n1,
    n2 ... for the lock's; a workload's extra cluster has its role as prefix (store1 ...)."""
    return [f"{prefix}{i}" for i in range(1, n_nodes + 1)]


class Cluster:
    """The nodes of one server kind, started together by a runtime, and the node operations
    the run and the nemeses call. Each runtime has its own (``ProcessCluster``,
    ``DockerCluster``, ``ComposeCluster``); this base, with no nodes, stands for a server the
    harness did not start (``--opt uri=...``), on which nothing acts."""

    #: How pause and resume act, as recorded in the history.
    pause_how: ClassVar[tuple[str, str]]

    def __init__(self, kind: ServerKind, nodes: list[Node]) -> None:
        self.kind = kind
        self.nodes = nodes

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # The node operations: each runtime's cluster has its own; here there is no node to act on.
    def start_node(self, node: Node, fresh: bool = False) -> None:
        raise NotImplementedError(node.name)

    def kill_node(self, node: Node, sig: int = signal.SIGKILL) -> None:
        raise NotImplementedError(node.name)

    def pause_node(self, node: Node) -> None:
        raise NotImplementedError(node.name)

    def resume_node(self, node: Node) -> None:
        raise NotImplementedError(node.name)

    def stop(self) -> None:
        """End (or, for nodes the run does not own, give back) every node. Idempotent."""

    def bring_up(self) -> None:
        """Start every node with empty data and wait until the cluster is ready."""
        for n in self.nodes:
            self.start_node(n, fresh=True)
        self.wait_ready()

    def wait_ready(self, nodes: list[Node] | None = None, timeout: float | None = None) -> None:
        nodes = nodes or self.nodes
        timeout = timeout or self.kind.ready_timeout

        def ok() -> bool:
            for n in nodes:
                if not n.alive():
                    raise ServerStartError(
                        f"{self.kind.kind} node {n.name} exited with code {n.proc.returncode} "
                        f"at start; see {n.log_path}: {_tail(n.log_path)}"
                    )
            if nodes is self.nodes:
                return self.kind.cluster_ready(nodes)
            return all(self.kind.ready(n) for n in nodes)

        if not wait_until(ok, timeout):
            raise ServerStartError(
                f"{self.kind.kind} was not ready within {timeout:.0f} s; logs under "
                f"{nodes[0].dir.parent}: {_tail(nodes[0].log_path)}"
            )

    def facts(self, node: Node) -> dict[str, Any]:
        """What config.json records of a running node besides its address: the server version
        it reports (so runs of two images compare cell by cell), and a container's facts."""
        try:
            return {"version": self.kind.version(node)}
        except Exception:
            return {"version": None}


class Runtime(ABC):
    """Starts clusters under ``run_dir/servers``; ``close()`` ends (or gives back) every node
    it started. ``start`` is the one way in for every runtime; each peer says how its nodes
    are made (``cluster``), and the nodes it makes on loopback come from one loop
    (``loopback_nodes``). ``clock``: nodes whose server reads time through libc run under the
    clock shim. ``keep_data=False``: ``close()`` also removes every node's data dir (its log
    stays), so a run's directory is bounded by its history and logs."""

    first_host = 11  # nodes listen on 127.0.0.11, .12, ...
    uid_base = 40000

    def __init__(self, run_dir: Path, clock: bool = False, keep_data: bool = True) -> None:
        self.dir = Path(run_dir).resolve() / "servers"  # servers run with their own cwd
        self.clock = clock
        self.keep_data = keep_data
        self.clusters: list[Cluster] = []
        self._next_host = self.first_host

    def start(
        self,
        kind_name: str,
        n_nodes: int,
        options: dict[str, Any] | None = None,
        own_uids: bool = True,
        prefix: str = "n",
    ) -> Cluster:
        """Start ``n_nodes`` of a kind and wait until the cluster is ready. ``own_uids=False``
        keeps harness helpers (the proxy) under the harness's own uid. Nodes are named
        ``<prefix>1``, ``<prefix>2`` ...: a workload's extra cluster gets its role as prefix, so
        node names stay unique across the run (nemesis targets)."""
        from .kinds import server_kind  # the kinds' modules import this one

        cluster = self.cluster(server_kind(kind_name, options), n_nodes, prefix, own_uids)
        self.clusters.append(cluster)
        cluster.bring_up()
        return cluster

    @abstractmethod
    def cluster(self, kind: ServerKind, n_nodes: int, prefix: str, own_uids: bool) -> Cluster:
        """The cluster of ``n_nodes`` of ``kind``, its nodes made but not started."""

    def node_dir(self, kind: ServerKind, name: str) -> Path:
        d = self.dir / f"{kind.kind}-{name}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def loopback_nodes(
        self, kind: ServerKind, n_nodes: int, prefix: str, own_uids: bool
    ) -> list[Node]:
        """Nodes on fresh loopback addresses with free ports, each with its dir; ``own_uids``:
        each under its own uid (``uid_base`` + the last octet of its address), so that
        iptables' owner match can tell its packets from its peers' (on loopback every
        connection's source address is 127.0.0.1)."""
        nodes = []
        for name in node_names(n_nodes, prefix):
            octet = self._next_host
            self._next_host += 1
            host = f"127.0.0.{octet}"
            d = self.node_dir(kind, name)
            extra = {p: free_port(host) for p in kind.extra_port_names}
            uid = self.uid_base + octet if own_uids else None
            node = Node(name, host, free_port(host), d, extra, uid=uid)
            node.clock = self.clock and kind.libc_clock
            nodes.append(node)
        return nodes

    def close(self) -> None:
        for c in reversed(self.clusters):
            c.stop()
        if not self.keep_data:
            for c in self.clusters:
                for n in c.nodes:
                    if not n.alive():  # stop() waited for each; never pull data from under one
                        shutil.rmtree(n.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-n:])[-300:] or "(empty log)"


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str) -> int:
    """A port that is free on ``host`` now (a small race is accepted: we retry on failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
