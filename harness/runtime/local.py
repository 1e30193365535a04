"""The local runtime: real server processes on loopback, owned and always torn down.

Every server is started in its own session (so a terminal's Ctrl-C reaches only the harness,
which then tears down in order) with PR_SET_PDEATHSIG, so that even a SIGKILLed harness takes
its servers with it; the run's guard (``lifeline.Guard``) ends what that cannot reach (a
server's stopped children) and removes what the servers leave (SysV segments, data dirs).
Processes are ended by pid, never by name, continued before they are killed.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import syncfs
from .base import Cluster, Node, Runtime, ServerKind
from .lifeline import Guard, close_guarded, descendants, die_with_parent
from .reach import OutOfReach, blocker, user_ids

_TO_EVERY_DESCENDANT = (signal.SIGSTOP, signal.SIGCONT, signal.SIGKILL)


class ProcessCluster(Cluster):
    """Nodes that are local processes the harness started."""

    pause_how = ("SIGSTOP", "SIGCONT")

    def __init__(
        self, kind: ServerKind, nodes: list[Node], guard: Guard | None = None, syncfs: bool = False
    ) -> None:
        super().__init__(kind, nodes)
        self.guard = guard  # records each server's pid the moment it starts
        self.syncfs = syncfs  # data dirs on the filesystem that loses unsynced writes

    def start_node(self, node: Node, fresh: bool = False) -> None:
        if node.alive():
            return
        if self.syncfs and fresh:
            syncfs.wipe(node)
        elif fresh and node.data_dir.exists():
            shutil.rmtree(node.data_dir)
        self.kind.prepare(node, self.nodes, fresh=fresh or not node.data_dir.exists())
        if self.syncfs:  # what the harness prepared (initdb's copy) is durable, as initdb's is
            syncfs.mount(node, self.guard.started if self.guard else None)
            syncfs.sync(node)
        if node.uid is not None:
            chown_tree(node.dir, node.uid)
        argv = self.kind.command(node, self.nodes)
        env = {**os.environ, **self.kind.env(node)}
        if node.clock:
            from ..clock import shim_env

            env.update(shim_env(node.dir))
            env["LD_PRELOAD"] = _reachable_shim(Path(env["LD_PRELOAD"]), node, self.kind)
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
            if self.guard is not None:
                self.guard.started(node.proc.pid)
        finally:
            log.close()
        node.paused = False

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
                # Continued first, paused or not by us: a stopped process ignores SIGTERM.
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
        if self.syncfs:  # its servers have ended: unmount, end the daemons by pid
            for n in self.nodes:
                syncfs.unmount(n)

    @staticmethod
    def _signal(node: Node, sig: int) -> None:
        # The server's process group, then every descendant: PostgreSQL's backends run in
        # sessions of their own, and a pause that left them running would pause nothing; a
        # kill that left them would leave them to init (stopped forever, if they were).
        # Found before the signal: once the server dies they are reparented.
        # A polite stop (SIGTERM) is the server's to pass on to its children.
        below = descendants(node.proc.pid) if sig in _TO_EVERY_DESCENDANT else []
        try:
            os.killpg(node.proc.pid, sig)
        except ProcessLookupError:
            return
        for pid in below:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


class LocalRuntime(Runtime):
    """Servers as local processes on 127.0.0.11, .12 ...

    ``node_uids``: run each node under its own uid, so that iptables' owner match can cut
    node<->node links. Needs root; kinds that must run as a named user (PostgreSQL) keep that
    user. A node whose user cannot reach the store gets its dir outside it (``reach.py``),
    linked from the store and moved back at the end; the user's directories are never changed.
    """

    def __init__(
        self, run_dir: Path, node_uids: bool = False, clock: bool = False, keep_data: bool = True
    ) -> None:
        super().__init__(run_dir, clock=clock, keep_data=keep_data)
        self.node_uids = node_uids and os.geteuid() == 0
        self.guard: Guard | None = None  # started with the first cluster
        self.reach = OutOfReach()
        #: servers' data dirs on syncfs (the kill nemesis's lose_unsynced), set before any start
        self.syncfs = False

    def cluster(
        self, kind: ServerKind, n_nodes: int, prefix: str, own_uids: bool
    ) -> ProcessCluster:
        kind.find_binary()
        if self.guard is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.guard = Guard(self.dir, self.keep_data)
        isolate = self.node_uids and own_uids and kind.user is None
        nodes = self.loopback_nodes(kind, n_nodes, prefix, own_uids=isolate)
        for n in nodes:
            ids = None
            if n.uid is not None:
                ids = (n.uid, n.uid)
            elif kind.user is not None and os.geteuid() == 0:
                ids = user_ids(kind.user)
            link = self.reach.place(n, *ids) if ids is not None else None
            if ids is not None:
                os.chown(n.dir, *ids)
            self.guard.node(n.dir, link, self.reach.outside)
        return ProcessCluster(kind, nodes, self.guard, syncfs=self.syncfs and own_uids)

    def close(self) -> None:
        close_guarded(self.guard, self._teardown)

    def _teardown(self) -> None:
        super().close()
        self.reach.bring_back()


def helper_cluster(runtime: Runtime, kind: ServerKind, n_nodes: int, prefix: str) -> Cluster:
    """The harness's own helpers (the proxy) are local processes under the harness's uid in
    every runtime (in the engine's namespace when the servers are containers)."""
    kind.find_binary()
    return ProcessCluster(kind, runtime.loopback_nodes(kind, n_nodes, prefix, own_uids=False))


def _reachable_shim(so: Path, node: Node, kind: ServerKind) -> str:
    """The clock shim where the node's user can load it: the cache may sit under a 0700 home,
    which the runtime does not open for it; then a copy in the node's dir (which it reaches)."""
    if node.uid is not None:
        ids = (node.uid, node.uid)
    elif kind.user is not None and os.geteuid() == 0:
        ids = user_ids(kind.user)
    else:
        return str(so)
    if blocker(so, *ids) is None:
        return str(so)
    copy = node.dir / so.name
    if not copy.exists():
        shutil.copy2(so, copy)
        os.chmod(copy, 0o755)
    return str(copy)


def chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
