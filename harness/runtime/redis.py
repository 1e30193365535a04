"""redis-server, from Debian's redis-server package."""

from __future__ import annotations

import socket

from .base import Node, ServerKind


class RedisServer(ServerKind):
    kind = "redis"
    package = "redis-server"
    binary = "redis-server"
    ready_timeout = 10.0

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        persistence = self.options.get("persistence", "off")
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
