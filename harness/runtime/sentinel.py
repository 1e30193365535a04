"""Redis Sentinel, from Debian's redis-sentinel package: the front of a replicated Redis.

Each node is one sentinel (``redis-sentinel <config>``) on its own loopback address, watching the
master named ``MASTER`` (the first node of its upstream, a ``redis`` cluster started with
``replicated``) with a quorum of a majority of the sentinels. A sentinel rewrites its config
file as it learns (other sentinels, replicas, a new master after a failover), so the file is
written only at a fresh start: a restarted sentinel keeps what it knew, as a deployed one does.

Timings are short so that a failover fits in a 10 s run: a master silent for
``down_after_ms`` (default 1000) is subjectively down; once a quorum agrees, a leader sentinel
promotes the replica (``failover_timeout_ms``, default 2000, also spaces retries of a failed
failover at twice that). Ready = every sentinel knows the master, its replicas and every other
sentinel (they find each other through hello messages every 2 s), so a kill can fail over at
once. A restarted old master comes back as a master with its own data; the sentinels turn it
into a replica of the new master some seconds later (Redis waits 8 s before it forces its view).
Clients that asked the sentinels before they announced the switch may be talking to it
meanwhile: what ``backends/redis_failover.py`` is known to break on.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from .base import Node, ServerKind, ServerStartError

MASTER = "lockharness"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 2000


class SentinelServer(ServerKind):
    kind = "redis-sentinel"
    package = "redis-sentinel"
    binary = "redis-sentinel"
    ready_timeout = 30.0  # sentinels announce themselves every 2 s; a busy machine is slower
    stop_signal = signal.SIGKILL  # it keeps nothing of the run's worth a polite stop

    def upstream(self) -> list[Node]:
        nodes = self.options.get("upstream")
        if not nodes:
            raise ServerStartError("redis-sentinel needs the redis nodes it watches (upstream)")
        return list(nodes)

    def quorum(self, cluster: list[Node]) -> int:
        return len(cluster) // 2 + 1

    def config_path(self, node: Node) -> Path:
        return node.dir / "sentinel.conf"

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        path = self.config_path(node)
        if path.exists() and not fresh:
            return  # what it learned (the current master, its peers) survives its restart
        master = self.upstream()[0]
        down = int(self.options.get("down_after_ms", DOWN_AFTER_MS))
        timeout = int(self.options.get("failover_timeout_ms", FAILOVER_TIMEOUT_MS))
        path.write_text(
            f"port {node.port}\n"
            f"bind {node.host}\n"
            # Peers and replicas learn the address it listens on, not the loopback connection's
            # source (127.0.0.1), where nothing of the run listens.
            f"sentinel announce-ip {node.host}\n"
            f"sentinel announce-port {node.port}\n"
            "daemonize no\n"
            "protected-mode no\n"
            'logfile ""\n'
            f"dir {node.dir}\n"
            f"sentinel monitor {MASTER} {master.host} {master.port} {self.quorum(cluster)}\n"
            f"sentinel down-after-milliseconds {MASTER} {down}\n"
            f"sentinel failover-timeout {MASTER} {timeout}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [self.find_binary(), str(self.config_path(node))]

    def ready(self, node: Node) -> bool:
        return bool(self.master_state(node))

    def cluster_ready(self, cluster: list[Node]) -> bool:
        replicas = len(self.upstream()) - 1
        for n in cluster:
            state = self.master_state(n)
            if (
                state.get("flags") != "master"
                or int(state.get("num-slaves", -1)) < replicas
                or int(state.get("num-other-sentinels", -1)) < len(cluster) - 1
            ):
                return False
        return True

    def version(self, node: Node) -> str | None:
        info = _command(node, "INFO", "server")  # parsed by the client library
        return str(info["redis_version"]) if isinstance(info, dict) and info else None

    def master_state(self, node: Node) -> dict[str, str]:
        """``SENTINEL MASTER`` as a dict ({} when the sentinel does not answer)."""
        reply = _command(node, "SENTINEL", "MASTER", MASTER)
        if not isinstance(reply, list):
            return {}
        items = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in reply]
        return dict(zip(items[::2], items[1::2], strict=False))


def _command(node: Node, *args: str) -> Any:
    """One command, bounded (a probe must never hang); None when the node does not answer."""
    import redis  # only the harness process needs it, and only for this kind

    try:
        with redis.Redis(
            host=node.host, port=node.port, socket_timeout=0.5, socket_connect_timeout=0.5,
            retry=None, protocol=2,
        ) as r:  # fmt: skip
            return r.execute_command(*args, NEVER_DECODE=True)
    except redis.RedisError:
        return None
