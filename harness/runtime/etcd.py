"""etcd 3.4, from Debian's etcd-server package: a static cluster over loopback addresses."""

from __future__ import annotations

import http.client
import json
import signal

from .base import ImageRecipe, Node, ServerKind
from .durability import Durability


class EtcdServer(ServerKind):
    kind = "etcd"
    package = "etcd-server"
    binary = "etcd"
    extra_port_names = ("peer",)
    ready_timeout = 20.0
    # Go reads the clock with its own vDSO calls, not through libc: the LD_PRELOAD clock shim
    # cannot move etcd, so clock faults are not applied to it.
    libc_clock = False
    stop_signal = signal.SIGKILL  # data is throwaway; a polite stop takes 5 s
    in_containers = True
    image_recipe = ImageRecipe(("etcd-server",))
    official_image = "quay.io/coreos/etcd:v3.4.30"
    compose_names = ("etcd",)
    client_port = 2379

    def durability(self) -> Durability:
        return Durability("etcd's defaults (the WAL is fsynced before a write is acknowledged)")

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        initial = ",".join(f"{n.name}={_peer_url(n)}" for n in cluster)
        client_url = f"http://{node.host}:{node.port}"
        return [
            self.find_binary(),
            "--name", node.name,
            "--data-dir", str(node.data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", _peer_url(node),
            "--initial-advertise-peer-urls", _peer_url(node),
            "--initial-cluster", initial,
            # Ignored once the data dir exists, so a restarted node rejoins with its own state.
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "lockharness",
            "--heartbeat-interval", str(self.options.get("heartbeat_ms", 50)),
            "--election-timeout", str(self.options.get("election_ms", 500)),
            "--logger", "zap",
            "--log-outputs", "stderr",
            "--log-level", "warn",
        ]  # fmt: skip

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)

    def ready(self, node: Node) -> bool:
        """``/health`` is true only when the node sees a leader and can serve (so every node
        healthy = a working cluster)."""
        return _healthy(node.host, node.port)

    def version(self, node: Node) -> str | None:
        conn = http.client.HTTPConnection(node.host, node.port, timeout=1.0)
        try:
            conn.request("GET", "/version")
            return str(json.loads(conn.getresponse().read()).get("etcdserver")) or None
        except (OSError, ValueError, http.client.HTTPException):
            return None
        finally:
            conn.close()


def _peer_url(node: Node) -> str:
    return f"http://{node.host}:{node.extra_ports['peer']}"


def _healthy(host: str, port: int, timeout: float = 0.5) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and json.loads(body).get("health") in ("true", True)
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()
