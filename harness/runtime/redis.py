"""redis-server, from Debian's redis-server package.

Persistence is the backend's choice (option ``persistence``): ``always`` (the default) writes
every command to the append-only file before its reply, so a killed server restarts with every
acknowledged write; ``everysec`` and ``off`` can lose acknowledged writes on a kill and are
reported as non-durable settings. RDB snapshots stay off either way (``--save ""``).

Replicated (``replicated``): the first node a master, the others its replicas; with
``repl_lag_ms`` a replica replicates through its own proxy that delivers the master's stream that
late (``repl_lag.py``), local runtime only.
"""

from __future__ import annotations

import socket
import sys

from .base import ImageRecipe, Node, ServerKind, free_port
from .durability import Durability

PERSISTENCE = ("off", "everysec", "always")
DEFAULT_PERSISTENCE = "always"


class RedisServer(ServerKind):
    kind = "redis"
    package = "redis-server"
    binary = "redis-server"
    ready_timeout = 10.0
    in_containers = True
    image_recipe = ImageRecipe(("redis-server",))
    official_image = "redis:7.0"
    compose_names = ("redis",)
    client_port = 6379

    @property
    def persistence(self) -> str:
        value = self.options.get("persistence", DEFAULT_PERSISTENCE)
        if value not in PERSISTENCE:
            raise ValueError(f"redis persistence={value!r}: give one of {', '.join(PERSISTENCE)}")
        return value

    def durability(self) -> Durability:
        if self.replicated:  # whatever the fsync policy: replication is asynchronous
            return Durability(
                f"persistence={self.persistence}, asynchronous replication",
                "a write the replica had not received when its master was killed is lost "
                "at the failover",
            )
        p = self.persistence
        if p == "always":
            return Durability("persistence=always (appendonly yes, appendfsync always)")
        if p == "everysec":
            return Durability(
                "persistence=everysec (appendonly yes, appendfsync everysec)",
                "while an fsync lags (up to 2 s) Redis answers writes it has not yet written "
                "to the append-only file; a kill loses them",
            )
        return Durability(
            "persistence=off (no append-only file, no snapshots)",
            "a killed server restarts empty: every lock and fence counter is forgotten",
        )

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        persistence = self.persistence
        argv = [
            self.find_binary(),
            "--bind",
            node.host,
            "--port",
            str(node.port),
            "--dir",
            str(node.data_dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            "",
        ]
        if persistence == "off":
            argv += ["--appendonly", "no"]
        else:  # everysec | always
            argv += ["--appendonly", "yes", "--appendfsync", persistence]
        if self.replicated:
            # Its master and the sentinels reach it at the address it listens on, not at the
            # connection's source (127.0.0.1).
            argv += ["--replica-announce-ip", node.host]
            # A replica syncs at once, not after the 5 s a master waits for more of them.
            argv += ["--repl-diskless-sync-delay", "0"]
            if node is not cluster[0]:  # a restart too: the sentinels correct a stale master
                master = cluster[0]
                lag = self.repl_lag_ms
                if lag:  # through its own proxy (repl_lag.py), started with it
                    port = node.extra_ports.setdefault("repl_lag", free_port(node.host))
                    argv += ["--replicaof", node.host, str(port)]
                    return [
                        sys.executable, "-m", "harness.runtime.repl_lag",
                        "--listen", f"{node.host}:{port}",
                        "--upstream", f"{master.host}:{master.port}",
                        "--lag-ms", str(lag), "--", *argv,
                    ]  # fmt: skip
                argv += ["--replicaof", master.host, str(master.port)]
        return argv

    @property
    def repl_lag_ms(self) -> int:
        """Replicas get the master's stream this late (0: directly)."""
        return int(self.options.get("repl_lag_ms", 0))

    def container_problem(self) -> str | None:
        if self.repl_lag_ms:
            return "redis with repl_lag_ms runs its replica's proxy beside it: local runtime only"
        return super().container_problem()

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def replicated(self) -> bool:
        """The first node a master, the others its replicas (asynchronous replication), for a
        front of sentinels to fail over (``sentinel.py``)."""
        return bool(self.options.get("replicated", False))

    def cluster_ready(self, cluster: list[Node]) -> bool:
        if not self.replicated:
            return super().cluster_ready(cluster)
        if not all(self.ready(n) for n in cluster):
            return False
        # Ready once every replica has synced and streams from the master: a kill fails over
        # at once, with the data.
        return all(_info(n, "replication").get("master_link_status") == "up" for n in cluster[1:])

    def ready(self, node: Node) -> bool:
        try:
            with socket.create_connection((node.host, node.port), timeout=0.3) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def version(self, node: Node) -> str | None:
        return _info(node, "server").get("redis_version")


def _info(node: Node, section: str) -> dict[str, str]:
    """``INFO <section>`` as a dict ({} when the node does not answer), over a bounded socket."""
    data = b""
    try:
        with socket.create_connection((node.host, node.port), timeout=1.0) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            for _ in range(100):  # the reply is one bulk string: $<length>, then that many bytes
                head, _, body = data.partition(b"\r\n")
                if head[:1] == b"$" and len(body) >= int(head[1:]):
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, ValueError):
        return {}
    lines = data.decode(errors="replace").splitlines()[1:]
    return dict(ln.split(":", 1) for ln in lines if ":" in ln and not ln.startswith("#"))
