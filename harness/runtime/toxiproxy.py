"""The embedded Toxiproxy-compatible proxy server (``harness.proxy``), run as its own process."""

from __future__ import annotations

import sys

from ..proxy.client import ToxiproxyClient, ToxiproxyError
from .base import Node, ServerKind


class EmbeddedToxiproxy(ServerKind):
    kind = "toxiproxy"
    package = "lockharness"  # ships with the harness: no Debian package needed
    binary = sys.executable
    ready_timeout = 10.0

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "harness.proxy",
            "--host",
            node.host,
            "--port",
            str(node.port),
        ]

    def ready(self, node: Node) -> bool:
        try:
            ToxiproxyClient(url(node), timeout=0.5).version()
            return True
        except ToxiproxyError:
            return False


def url(node: Node) -> str:
    """The API URL of a running node."""
    return f"http://{node.host}:{node.port}"
