"""ZooKeeper 3.8, from Debian's zookeeper package: a quorum of QuorumPeerMain JVMs.

The package's ``zookeeper.jar`` names its dependencies in its manifest ``Class-Path``; slf4j's
simple binding sends the server log to stderr (the node's server.log). A short tickTime keeps
session timeouts (bounded by the server to 2..20 ticks) at a few seconds, so session-expiry
faults play out within a short test.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from .base import MissingBinary, Node, ServerKind
from .durability import Durability

JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar")
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class ZooKeeperServer(ServerKind):
    kind = "zookeeper"
    package = "zookeeper"
    binary = "java"
    extra_port_names = ("peer", "election")
    ready_timeout = 30.0
    compose_names = ("zk", "zookeeper")
    client_port = 2181

    def find_binary(self) -> str:
        java = shutil.which(self.binary)
        missing = [j for j in JARS if not Path(j).exists()]
        if java is None or missing:
            raise MissingBinary(
                "ZooKeeper needs java and the zookeeper jars "
                f"({', '.join(missing) or 'java not on PATH'} missing): "
                "install the Debian packages zookeeper and libslf4j-java "
                "(apt-get install -y zookeeper libslf4j-java)"
            )
        return java

    def durability(self) -> Durability:
        return Durability(
            "forceSync=no (the transaction log reaches the kernel before a write is acknowledged)"
        )

    def power_cut_refusal(self) -> str | None:
        """A power cut (kill lose_unsynced=true) would test forceSync=no, the harness's choice."""
        return (
            "zookeeper runs with forceSync=no here (its log reaches the kernel, not the disk): "
            "a power cut would test the harness's setting, not the lock"
        )

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        (node.data_dir / "myid").write_text(f"{_myid(node)}\n")
        tick = int(self.options.get("tick_ms", 250))
        lines = [
            f"tickTime={tick}",
            "initLimit=20",
            "syncLimit=8",
            f"dataDir={node.data_dir}",
            f"clientPort={node.port}",
            f"clientPortAddress={node.host}",
            # Sessions may ask for 2..40 ticks (0.5..10 s at the default tick).
            f"minSessionTimeout={2 * tick}",
            f"maxSessionTimeout={40 * tick}",
            "4lw.commands.whitelist=srvr,ruok,stat,mntr,cons",
            "admin.enableServer=false",
            # The log is written to the kernel before a transaction is acknowledged, just not
            # fsynced: a process kill loses nothing acknowledged, a power loss could.
            "forceSync=no",
            "standaloneEnabled=false" if len(cluster) > 1 else "standaloneEnabled=true",
            "reconfigEnabled=false",
            "maxClientCnxns=0",
        ]
        for n in cluster:
            lines.append(
                f"server.{_myid(n)}={n.host}:{n.extra_ports['peer']}:{n.extra_ports['election']}"
            )
        (node.dir / "zoo.cfg").write_text("\n".join(lines) + "\n")

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [
            self.find_binary(),
            # A small, quick-starting JVM: two cores run several of these at once.
            "-Xms32m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            # No /tmp/hsperfdata_<user>/<pid> file, which a killed JVM would leave behind.
            "-XX:-UsePerfData",
            "-Xshare:auto",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            # A follower restarted from a log without snapshot must still load it.
            "-Dzookeeper.snapshot.trust.empty=true",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            ":".join(JARS),
            MAIN,
            str(node.dir / "zoo.cfg"),
        ]

    def ready(self, node: Node) -> bool:
        """Serving = ``srvr`` reports a mode (leader/follower/standalone), not an error."""
        return _mode(node) is not None

    def version(self, node: Node) -> str | None:
        """From ``srvr``: "Zookeeper version: 3.8.0-<commit>, built on ..." (Debian's build
        leaves the commit a placeholder)."""
        said = _srvr(node, 1.0).get("Zookeeper version", "")
        return said.split(",")[0].split("-")[0].strip() or None

    def cluster_ready(self, cluster: list[Node]) -> bool:
        # Every node serves and one leads (a quorum formed and all joined it), or the single
        # node of a one-node ensemble runs standalone.
        modes = [_mode(n) for n in cluster]
        return None not in modes and any(m in ("leader", "standalone") for m in modes)


def _myid(node: Node) -> int:
    return int(node.name.lstrip("n"))


def _mode(node: Node, timeout: float = 0.5) -> str | None:
    """The node's ``Mode:`` from the ``srvr`` four-letter word, or None when not serving."""
    return _srvr(node, timeout).get("Mode")


def _srvr(node: Node, timeout: float) -> dict[str, str]:
    """The ``srvr`` four-letter word's "Name: value" lines ({} when the node does not answer)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout) as s:
            s.sendall(b"srvr")
            data = b""
            while len(data) < 4096:
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}
    lines = (ln.partition(":") for ln in data.decode(errors="replace").splitlines())
    return {k.strip(): v.strip() for k, sep, v in lines if sep}
