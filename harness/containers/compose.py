"""The compose runtime: the harness targets the servers of a running compose project.

The user brings the project up (``docker-compose -p NAME up -d``); a run adopts its containers
instead of starting servers. A service is a node of kind K when it carries the label
``lockharness.kind=K`` (or, without labels, when its name is K's service prefix and a number:
``redis1``, ``etcd2``, ``zk3``); its address is the label ``lockharness.address`` (HOST:PORT,
for host networking) or the port it publishes for the kind's client port. Nodes are taken in
service-name order.

The project belongs to the user, so the run leaves it as it found it: kill is ``docker kill``
and restart ``docker start`` of the same container (its data survives, as the project's own
settings decide), pause is ``docker pause``; at the end every paused container is thawed and
every container the run killed is started again. Nothing is created or removed. What cannot
work on containers the harness did not start (wiping a node's data, the clock shim, a replica
the harness would have set up) is refused before the run starts (``harness/run/container_runs.py``).
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from pathlib import Path
from typing import Any

from ..runtime.base import Cluster, Node, Runtime, ServerKind, ServerStartError, node_names
from ..runtime.kinds import kind_of_service
from ..runtime.local import helper_cluster
from .docker_runtime import ContainerProc
from .engine import Engine

LABEL_KIND = "lockharness.kind"
LABEL_ADDRESS = "lockharness.address"
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
_STOP_S = 10


def service_kind(labels: dict[str, str]) -> str | None:
    """The server kind a compose service holds, from its labels or its name."""
    if labels.get(LABEL_KIND):
        return labels[LABEL_KIND]
    m = re.fullmatch(r"([a-z]+?)-?\d*", labels.get(SERVICE, ""))
    if m is None:
        return None
    return kind_of_service(m.group(1))


def address(container: Any, kind: ServerKind) -> tuple[str, int] | None:
    """Where clients reach a service: its ``lockharness.address`` label, else the loopback
    port it publishes for the kind's client port."""
    labels = container.labels or {}
    if labels.get(LABEL_ADDRESS):
        host, _, port = labels[LABEL_ADDRESS].rpartition(":")
        return host, int(port)
    port = kind.client_port or 0
    bound = (container.ports or {}).get(f"{port}/tcp") or []
    for b in bound:
        host = b.get("HostIp") or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return host, int(b["HostPort"])
    return None


def project_services(client: Any, project: str) -> dict[str, list[Any]]:
    """The project's containers by server kind, each list in service-name order."""
    found: dict[str, list[Any]] = {}
    for c in client.containers.list(all=True, filters={"label": f"{PROJECT}={project}"}):
        kind = service_kind(c.labels or {})
        if kind is not None:
            found.setdefault(kind, []).append(c)
    for cs in found.values():
        cs.sort(key=lambda c: _natural((c.labels or {}).get(SERVICE, c.name)))
    return found


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


class ComposeCluster(Cluster):
    """Nodes that are a compose project's containers; left running and thawed at the end."""

    pause_how = ("docker pause", "docker unpause")

    def __init__(
        self, kind: ServerKind, nodes: list[Node], containers: dict[str, Any], project: str
    ):
        super().__init__(kind, nodes)
        self.containers = containers
        self.project = project
        self._since = int(time.time())

    def bring_up(self) -> None:
        """Adopt the running containers: a run starts from a live cluster, so what someone
        left frozen is thawed and what is stopped is started (with its data)."""
        for n in self.nodes:
            self.adopt(n)
            if n.paused:
                self.resume_node(n)
            if not n.alive():
                self.start_node(n)
        self.wait_ready()

    def facts(self, node: Node) -> dict[str, Any]:
        c = self.containers[node.name]  # each node is one of the project's containers
        return {
            "image": c.attrs["Config"]["Image"],
            "container": c.id[:12],
            "compose_service": (c.labels or {}).get(SERVICE),
            "durability": f"compose project {self.project}'s own settings",
        } | super().facts(node)

    def adopt(self, node: Node) -> None:
        c = self.containers[node.name]
        c.reload()
        node.proc = ContainerProc(c, node.log_path, since=self._since)
        node.paused = c.status == "paused"

    def start_node(self, node: Node, fresh: bool = False) -> None:
        if fresh:  # refused before the run; a guard for callers that did not ask
            raise ServerStartError("--runtime compose cannot wipe a node's data")
        if node.alive():
            return
        c = self.containers[node.name]
        c.start()
        self.adopt(node)

    def kill_node(self, node: Node, sig: int = signal.SIGKILL) -> None:
        if node.paused:
            self.resume_node(node)
        if node.alive():
            with contextlib.suppress(Exception):
                self.containers[node.name].kill(signal=int(sig))
            node.proc.wait(timeout=30)
        node.paused = False

    def pause_node(self, node: Node) -> None:
        if node.alive() and not node.paused:
            self.containers[node.name].pause()
            node.paused = True

    def resume_node(self, node: Node) -> None:
        if node.paused:
            self.containers[node.name].unpause()
            node.paused = False

    def stop(self) -> None:
        """Leave the project as found: thaw what is paused, start what the run killed."""
        for n in self.nodes:
            with contextlib.suppress(Exception):
                self.resume_node(n)
            if not n.alive():
                with contextlib.suppress(Exception):
                    self.start_node(n)
            if isinstance(n.proc, ContainerProc):
                n.proc.save_log()
        with contextlib.suppress(ServerStartError):
            self.wait_ready(timeout=_STOP_S)


class ComposeRuntime(Runtime):
    """Adopts the running containers of compose project ``project`` in ``engine`` as clusters;
    helper processes (the proxy) run as local processes, as in the other runtimes."""

    def __init__(self, run_dir: Path, engine: Engine, project: str) -> None:
        super().__init__(run_dir, keep_data=True)  # the data is the project's, never ours
        self.engine = engine
        self.project = project
        self._taken: set[str] = set()  # container ids already given to a cluster

    def cluster(self, kind: ServerKind, n_nodes: int, prefix: str, own_uids: bool) -> Cluster:
        if kind.helper:
            return helper_cluster(self, kind, n_nodes, prefix)
        kind.container = True
        free = [
            c
            for c in project_services(self.engine.client, self.project).get(kind.kind, [])
            if c.id not in self._taken
        ]
        if len(free) < n_nodes:
            raise ServerStartError(
                f"compose project {self.project} has {len(free)} free {kind.kind} service(s); "
                f"this run needs {n_nodes} (label services lockharness.kind={kind.kind}, or "
                f"name them {(kind.compose_names or (kind.kind,))[0]}1, ...)"
            )
        nodes, containers = [], {}
        for name, c in zip(node_names(n_nodes, prefix), free, strict=False):
            where = address(c, kind)
            if where is None:
                raise ServerStartError(
                    f"compose service {c.labels.get(SERVICE, c.name)}: no address; give it the "
                    f"label {LABEL_ADDRESS}=HOST:PORT or publish its port on 127.0.0.1"
                )
            nodes.append(Node(name, where[0], where[1], self.node_dir(kind, name)))
            containers[name] = c
            self._taken.add(c.id)
        return ComposeCluster(kind, nodes, containers, self.project)
