"""The Toxiproxy server kinds: the embedded one (``harness/toxiproxy/``) and Shopify's real one,
each run as its own process: the harness's helpers, never in containers."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from harness.toxiproxy.client import ToxiproxyClient, ToxiproxyError

from .base import MissingBinary, Node, ServerKind

#: Where a checkout finds the real server: ``../shared/tools/toxiproxy/`` beside the repository.
SHARED_BINARY = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "tools"
    / "toxiproxy"
    / "toxiproxy-server"
)


class EmbeddedToxiproxy(ServerKind):
    kind = "toxiproxy"
    package = "lockharness"  # ships with the harness: no Debian package needed
    binary = sys.executable
    ready_timeout = 10.0
    helper = True

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "harness.toxiproxy",
            "--host",
            node.host,
            "--port",
            str(node.port),
        ]

    def ready(self, node: Node) -> bool:
        return answers(node)


class RealToxiproxy(ServerKind):
    """Shopify's ``toxiproxy-server`` (a static Go binary): ``$TOXIPROXY_SERVER``, else
    ``../shared/tools/toxiproxy/toxiproxy-server`` beside the repository, else on PATH."""

    kind = "toxiproxy-server"
    package = "toxiproxy (not in Debian: see ../shared/tools/toxiproxy/README.md)"
    binary = "toxiproxy-server"
    ready_timeout = 10.0
    libc_clock = False  # Go reads the clock without libc
    helper = True

    def find_binary(self) -> str:
        given = os.environ.get("TOXIPROXY_SERVER")
        if given:
            if not os.access(given, os.X_OK):
                raise MissingBinary(f"TOXIPROXY_SERVER={given} is not an executable file")
            return given
        if os.access(SHARED_BINARY, os.X_OK):
            return str(SHARED_BINARY)
        if SHARED_BINARY.exists():
            raise MissingBinary(f"{SHARED_BINARY} is not executable (chmod +x it)")
        found = shutil.which(self.binary)
        if found is None:
            raise MissingBinary(
                f"toxiproxy-server not found: set TOXIPROXY_SERVER, or put it at {SHARED_BINARY}"
            )
        return found

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [self.find_binary(), "-host", node.host, "-port", str(node.port)]

    def env(self, node: Node) -> dict[str, str]:
        return {"LOG_LEVEL": "warn"}  # it logs every connection at info level

    def ready(self, node: Node) -> bool:
        return answers(node)


def answers(node: Node) -> bool:
    try:
        ToxiproxyClient(url(node), timeout=0.5).version()
        return True
    except ToxiproxyError:
        return False


def url(node: Node) -> str:
    """The API URL of a running node."""
    return f"http://{node.host}:{node.port}"
