"""redis-server, from Debian's redis-server package.

Persistence is the backend's choice (option ``persistence``): ``always`` (the default) writes
every command to the append-only file before its reply, so a killed server restarts with every
acknowledged write; ``everysec`` and ``off`` can lose acknowledged writes on a kill and are
reported as non-durable settings. RDB snapshots stay off either way (``--save ""``).
"""

from __future__ import annotations

import socket

from .base import ImageRecipe, Node, ServerKind
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
        return argv

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)

    def ready(self, node: Node) -> bool:
        try:
            with socket.create_connection((node.host, node.port), timeout=0.3) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def version(self, node: Node) -> str | None:
        try:
            with socket.create_connection((node.host, node.port), timeout=1.0) as s:
                s.sendall(b"INFO server\r\n")
                data = b""
                while b"redis_version:" not in data or not data.endswith(b"\r\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return None
