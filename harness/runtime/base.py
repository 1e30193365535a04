"""Server kinds and nodes: how a real server binary is prepared, started and probed.

A ``ServerKind`` knows one server program (redis-server, etcd, ZooKeeper, PostgreSQL ...): the
Debian package that ships it, the argv to start one node of a cluster, and a readiness probe.
The ``LocalRuntime`` (``local.py``) owns the processes.
"""

from __future__ import annotations

import shutil
import signal
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .durability import Durability


class ServerStartError(RuntimeError):
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


class ServerKind(ABC):
    """One server program, e.g. redis-server."""

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
