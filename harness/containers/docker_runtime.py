"""The Docker runtime: each node of a cluster is a container, started through the Docker SDK.

A container runs the kind's own argv (``ServerKind.container_command``) with the image's binary,
``network_mode="host"`` (the engine's namespace, which the harness joins), the node's dir
mounted at the same path (so data, logs and the clock shim's offset file are where the local
runtime keeps them), and the node's own uid (so the partition nemesis's owner-match iptables
rules tell nodes apart as in the local runtime). Kill is ``docker kill`` and restart a new
container on the same dir (emptied first for a wipe); pause is ``docker pause`` (the cgroup
freezer, which stops every process of the container at once).

Containers are labelled with the run and its owner (boot id, pid, start time) and removed by id
at teardown; a SIGKILLed harness leaves them labelled, and the next start or
``harness doctor --clean`` removes them (``containers/engine.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

from ..runtime.base import Cluster, Node, Runtime, ServerKind, ServerStartError
from ..runtime.lifeline import Guard, close_guarded
from ..runtime.local import _reachable_shim, chown_tree, helper_cluster
from ..runtime.reach import OutOfReach, blocker
from .engine import LABEL_OWNER, LABEL_RUN, Engine, owner_token

_STOP_S = 5


class ContainerProc:
    """What the run loop and nemeses read of a node's process (pid, poll, wait), for a
    container; a container that exited copies its output into the node's server.log."""

    def __init__(self, container: Any, log_path: Path, since: int | None = None) -> None:
        self.container = container
        self.log_path = log_path
        self.since = since  # a container the run did not create: only the run's own output
        self.returncode: int | None = None
        self.pid = int(container.attrs["State"].get("Pid") or 0) or None
        self._logged = False

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.container.reload()
                state = self.container.attrs["State"]
            except Exception:  # removed meanwhile
                self.returncode = -9
                return self.returncode
            if state.get("Status") in ("exited", "dead"):
                self.returncode = int(state.get("ExitCode", -1))
                self.save_log()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import requests

        try:
            res = self.container.wait(timeout=timeout)
            self.returncode = int(res.get("StatusCode", -1))
        except requests.exceptions.RequestException as e:
            import subprocess

            raise subprocess.TimeoutExpired(self.container.name, timeout or 0) from e
        self.save_log()
        return self.returncode

    def save_log(self) -> None:
        if self._logged:
            return
        self._logged = True
        with contextlib.suppress(Exception), open(self.log_path, "ab") as f:
            f.write(self.container.logs(stdout=True, stderr=True, since=self.since))


class DockerCluster(Cluster):
    """A cluster whose nodes are containers of one image."""

    pause_how = ("docker pause", "docker unpause")  # the cgroup freezer, every process at once

    def __init__(self, kind: ServerKind, nodes: list[Node], runtime: DockerRuntime, image: str):
        super().__init__(kind, nodes)
        self.runtime = runtime
        self.image = image
        self.containers: dict[str, Any] = {}

    def start_node(self, node: Node, fresh: bool = False) -> None:
        if node.alive():
            return
        self._remove(node)
        if fresh and node.data_dir.exists():
            shutil.rmtree(node.data_dir)
        self.kind.prepare(node, self.nodes, fresh=fresh or not node.data_dir.exists())
        uid = node.uid if node.uid is not None else 0
        chown_tree(node.dir, uid)
        argv = self.kind.container_command(node, self.nodes)
        env = dict(self.kind.env(node))
        mounts = {str(node.dir): {"bind": str(node.dir), "mode": "rw"}}
        if self.kind.user is not None:  # initdb and friends look their uid up
            passwd = node.dir / "passwd"
            passwd.write_text(
                f"root:x:0:0:root:/root:/bin/sh\n{self.kind.user}:x:{uid}:{uid}::{node.dir}:/bin/sh\n"
            )
            group = node.dir / "group"
            group.write_text(f"root:x:0:\n{self.kind.user}:x:{uid}:\n")
            mounts[str(passwd)] = {"bind": "/etc/passwd", "mode": "ro"}
            mounts[str(group)] = {"bind": "/etc/group", "mode": "ro"}
        if node.clock:
            from ..clock import shim_env

            shim = shim_env(node.dir)
            os.chown(node.dir / "clock-offset", uid, uid)
            so = Path(shim["LD_PRELOAD"])
            # A cache the node's uid cannot reach on the host (a 0700 home) may be as closed in
            # the image (Debian's /root is 0700): then a copy in the node's dir.
            shim["LD_PRELOAD"] = _reachable_shim(so, node, self.kind)
            if shim["LD_PRELOAD"] == str(so):
                mounts[str(so)] = {"bind": str(so), "mode": "ro"}
            env.update(shim)
        client = self.runtime.engine.client
        container = client.containers.create(
            self.image,
            entrypoint=argv[:1],
            command=argv[1:],
            user=f"{uid}:{uid}",
            network_mode="host",
            volumes=mounts,
            environment=env,
            working_dir=str(node.dir),
            labels=self.runtime.labels | {"lockharness.node": f"{self.kind.kind}-{node.name}"},
            name=f"{self.runtime.run_id}-{self.kind.kind}-{node.name}",
            detach=True,
        )
        self.containers[node.name] = container
        container.start()
        container.reload()
        node.proc = ContainerProc(container, node.log_path)
        node.paused = False

    def facts(self, node: Node) -> dict[str, Any]:
        c = self.containers.get(node.name)
        return {
            "image": self.image,
            "container": c.id[:12] if c is not None else None,
        } | super().facts(node)

    def _remove(self, node: Node) -> None:
        c = self.containers.pop(node.name, None)
        if c is None:
            return
        if isinstance(node.proc, ContainerProc):
            node.proc.save_log()
        with contextlib.suppress(Exception):
            c.remove(force=True)

    def kill_node(self, node: Node, sig: int = signal.SIGKILL) -> None:
        c = self.containers.get(node.name)
        if c is None or node.proc is None:
            return
        if node.paused:  # a frozen container is not killed until it is thawed
            self.resume_node(node)
        if node.proc.poll() is None:
            with contextlib.suppress(Exception):
                c.kill(signal=int(sig))
            node.proc.wait(timeout=30)
        node.paused = False

    def pause_node(self, node: Node) -> None:
        if node.alive() and not node.paused:
            self.containers[node.name].pause()
            node.paused = True

    def resume_node(self, node: Node) -> None:
        if node.paused and node.name in self.containers:
            self.containers[node.name].unpause()
            node.paused = False

    def stop(self) -> None:
        """Thaw, ask politely (the kind's stop signal), then remove every container by id."""
        for n in self.nodes:
            if n.name in self.containers and n.alive():
                with contextlib.suppress(Exception):
                    if n.paused:
                        self.containers[n.name].unpause()
                        n.paused = False
                    self.containers[n.name].kill(signal=int(self.kind.stop_signal))
        for n in self.nodes:
            if n.name in self.containers:
                with contextlib.suppress(Exception):
                    n.proc.wait(timeout=_STOP_S)
                self._remove(n)


class DockerRuntime(Runtime):
    """Starts server clusters as containers in ``engine``; helper processes (the proxy) as
    local processes in the same namespace. ``images``: kind -> image (else the kind's official
    one). Nodes always run under their own uids (40000 + the last octet of their address)."""

    def __init__(
        self,
        run_dir: Path,
        engine: Engine,
        images: dict[str, str] | None = None,
        clock: bool = False,
        keep_data: bool = True,
    ) -> None:
        # The user's directories keep their modes: dockerd (root) resolves each bind mount's
        # source, and a node's uid walks only the container's own path to its mount point.
        super().__init__(run_dir, clock=clock, keep_data=keep_data)
        self.guard: Guard | None = None  # moves node dirs back after a SIGKILL
        self.reach = OutOfReach()
        self.engine = engine
        self.images = dict(images or {})
        stamp = re.sub(r"[^a-z0-9_-]+", "-", Path(run_dir).name.lower())[-22:]
        self.run_id = f"lh-{os.getpid()}-{stamp}"  # container names: lh-<pid>-<run>-<kind>-<node>
        self.labels = {LABEL_RUN: str(Path(run_dir).resolve()), LABEL_OWNER: owner_token()}

    def image_for(self, kind: ServerKind) -> str:
        image = self.images.get(kind.kind) or kind.official_image
        if image is None:
            raise ServerStartError(f"no image for {kind.kind}: give --image {kind.kind}=IMAGE")
        return image

    def cluster(self, kind: ServerKind, n_nodes: int, prefix: str, own_uids: bool) -> Cluster:
        if kind.helper:
            return helper_cluster(self, kind, n_nodes, prefix)
        from . import images

        kind.container = True
        problem = kind.container_problem()
        if problem:
            raise ServerStartError(f"--runtime docker: {problem}")
        image = self.image_for(kind)
        images.ensure(self.engine.client, image, pull=not self.engine.private)
        nodes = self.loopback_nodes(kind, n_nodes, prefix, own_uids=True)
        for n in nodes:
            self._place(n)
        return DockerCluster(kind, nodes, self, image)

    def _place(self, node: Node) -> None:
        """A node dir is mounted at its own path, which the image may close where the host
        does (Debian's /root is 0700): a store its uid cannot reach on the host gets the node's
        dir in a scratch dir (``reach.py``), linked from the store, moved back at the end."""
        uid = node.uid if node.uid is not None else 0
        if blocker(node.dir, uid, uid) is None:
            return
        if self.guard is None:
            self.guard = Guard(self.dir, self.keep_data)
        link = self.reach.place(node, uid, uid)
        self.guard.node(node.dir, link, self.reach.outside)

    def close(self) -> None:
        close_guarded(self.guard, self._teardown)

    def _teardown(self) -> None:
        super().close()
        self.reach.bring_back()
