"""The local runtime: real server processes on loopback, owned and always torn down.

Every server is started in its own session (so a terminal's Ctrl-C reaches only the harness,
which then tears down in order) with PR_SET_PDEATHSIG, so that even a SIGKILLed harness takes
its servers with it. Processes are ended by pid, never by name.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from .base import Node, ServerKind, ServerStartError, free_port, wait_until
from .kinds import server_kind
from .lifeline import descendants, die_with_parent


def node_names(n_nodes: int, prefix: str = "n") -> list[str]:
    """The names a cluster's nodes get (also known before start, for checking targets): n1,
    n2 ... for the lock's; a workload's extra cluster has its role as prefix (store1 ...)."""
    return [f"{prefix}{i}" for i in range(1, n_nodes + 1)]


class Cluster:
    """The nodes of one server kind, started together."""

    #: How pause and resume act, as recorded in the history.
    pause_how: tuple[str, str] = ("SIGSTOP", "SIGCONT")

    def __init__(self, kind: ServerKind, nodes: list[Node]) -> None:
        self.kind = kind
        self.nodes = nodes

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # -- process control, used by setup, teardown and the nemeses --------------------------

    def start_node(self, node: Node, fresh: bool = False) -> None:
        if node.alive():
            return
        if fresh and node.data_dir.exists():
            shutil.rmtree(node.data_dir)
        self.kind.prepare(node, self.nodes, fresh=fresh or not node.data_dir.exists())
        if node.uid is not None:
            _chown_tree(node.dir, node.uid)
        argv = self.kind.command(node, self.nodes)
        env = {**os.environ, **self.kind.env(node)}
        if node.clock:
            from ..clock import shim_env

            env.update(shim_env(node.dir))
        log = open(node.log_path, "ab")
        kwargs: dict = {}
        if node.uid is not None:
            kwargs.update(user=node.uid, group=node.uid, extra_groups=[])
        elif self.kind.user is not None and os.geteuid() == 0:
            kwargs.update(user=self.kind.user, group=self.kind.user, extra_groups=[])
        try:
            node.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.dir,
                env=env,
                start_new_session=True,
                # Runs in the child between fork and exec (after any uid change).
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
                **kwargs,
            )
        finally:
            log.close()
        node.paused = False

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

    def kill_node(self, node: Node, sig: int = signal.SIGKILL) -> None:
        if node.proc is None:
            return
        if node.paused:
            self._signal(node, signal.SIGCONT)
        if node.proc.poll() is None:
            self._signal(node, sig)
            try:
                node.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(node, signal.SIGKILL)
                node.proc.wait(timeout=10)
        node.paused = False

    def pause_node(self, node: Node) -> None:
        if node.alive() and not node.paused:
            self._signal(node, signal.SIGSTOP)
            node.paused = True

    def resume_node(self, node: Node) -> None:
        if node.paused and node.proc is not None:
            self._signal(node, signal.SIGCONT)
            node.paused = False

    def stop(self) -> None:
        """Resume anything paused, ask politely, then SIGKILL what is left. Idempotent."""
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                if n.paused:
                    self._signal(n, signal.SIGCONT)
                    n.paused = False
                self._signal(n, self.kind.stop_signal)
        deadline = time.monotonic() + 5
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(n, signal.SIGKILL)
                n.proc.wait(timeout=10)

    @staticmethod
    def _signal(node: Node, sig: int) -> None:
        # The server's process group, then every descendant: PostgreSQL's backends run in
        # sessions of their own, and a pause that left them running would pause nothing.
        try:
            os.killpg(node.proc.pid, sig)
        except ProcessLookupError:
            return
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            for pid in descendants(node.proc.pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass


class LocalRuntime:
    """Starts clusters under ``run_dir/servers``; ``close()`` ends every process it started.

    ``node_uids``: run each node under its own uid (40000 + the last octet of its address), so
    that iptables' owner match can cut node<->node links (on loopback every connection's source
    address is 127.0.0.1, so addresses alone cannot tell the sender). Needs root; kinds that
    must run as a named user (PostgreSQL) keep that user. ``clock``: start nodes whose server
    reads time through libc under the clock shim, so the clock nemesis can move their clocks.
    ``keep_data=False``: ``close()`` also removes every node's data dir (its log stays), so a
    run's directory is bounded by its history and logs.
    """

    first_host = 11  # nodes listen on 127.0.0.11, .12, ...
    uid_base = 40000

    def __init__(
        self, run_dir: Path, node_uids: bool = False, clock: bool = False, keep_data: bool = True
    ) -> None:
        self.dir = Path(run_dir).resolve() / "servers"  # servers run with their own cwd
        self.keep_data = keep_data
        self.clusters: list[Cluster] = []
        self._next_host = self.first_host
        self.node_uids = node_uids and os.geteuid() == 0
        self.clock = clock
        if self.node_uids:
            _let_others_traverse(self.dir)

    def start(
        self,
        kind_name: str,
        n_nodes: int,
        options: dict | None = None,
        own_uids: bool = True,
        prefix: str = "n",
    ) -> Cluster:
        """Start ``n_nodes`` of a kind and wait until the cluster is ready. ``own_uids=False``
        keeps harness helpers (the proxy) under the harness's own uid. Nodes are named
        ``<prefix>1``, ``<prefix>2`` ...: a workload's extra cluster gets its role as prefix, so
        node names stay unique across the run (nemesis targets)."""
        kind = server_kind(kind_name, options)
        kind.find_binary()
        nodes = []
        for i in range(1, n_nodes + 1):
            octet = self._next_host
            host = f"127.0.0.{octet}"
            self._next_host += 1
            d = self.dir / f"{kind.kind}-{prefix}{i}"
            d.mkdir(parents=True, exist_ok=True)
            isolate = self.node_uids and own_uids and kind.user is None
            uid = self.uid_base + octet if isolate else None
            if uid is not None:
                os.chown(d, uid, uid)
            elif kind.user is not None and os.geteuid() == 0:
                shutil.chown(d, kind.user, kind.user)
            extra = {p: free_port(host) for p in kind.extra_port_names}
            node = Node(
                node_names(n_nodes, prefix)[i - 1], host, free_port(host), d, extra, uid=uid
            )
            node.clock = self.clock and kind.libc_clock
            nodes.append(node)
        cluster = Cluster(kind, nodes)
        self.clusters.append(cluster)
        for n in nodes:
            cluster.start_node(n, fresh=True)
        cluster.wait_ready()
        return cluster

    def close(self) -> None:
        for c in reversed(self.clusters):
            c.stop()
        if not self.keep_data:
            for c in self.clusters:
                for n in c.nodes:
                    if not n.alive():  # stop() waited for each; never pull data from under one
                        shutil.rmtree(n.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _let_others_traverse(d: Path) -> None:
    """Nodes under their own uids must reach their directories (and the clock shim's file):
    give the run directory's ancestors the search bit (o+x) where it is missing."""
    d.mkdir(parents=True, exist_ok=True)
    for p in [d, *d.resolve().parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(p, mode | stat.S_IXOTH)


def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-n:])[-300:] or "(empty log)"
