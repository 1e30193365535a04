"""iptables cuts between server nodes, inside the run's private namespace only.

On loopback every connection's source address is 127.0.0.1, so a rule cannot tell which node
sent a packet by address. Each node therefore runs under its own uid, and a cut from node A to
node B is ``OUTPUT -m owner --uid-owner uid(A) -d addr(B) -j DROP``: every packet A sends towards
B is dropped, which kills the connections A opens to B and, for connections B opened to A, A's
side of them. A symmetric partition drops both directions.
"""

from __future__ import annotations

import subprocess

from backends.errors import LockHarnessError

from ..runtime.base import Node
from .netns import tool

CHAIN = "LOCKHARNESS"


class FirewallError(LockHarnessError, RuntimeError):
    pass


class Firewall:
    """Owns one iptables chain in the current (private) namespace, jumped to from ``hook``
    (OUTPUT for cuts, whose owner match works there only; the packet-loss nemesis uses a chain
    of its own from INPUT, so a dropped packet is lost on the way, not refused to its sender)."""

    def __init__(self, chain: str = CHAIN, hook: str = "OUTPUT") -> None:
        self.iptables = tool("iptables")
        self.chain, self.hook = chain, hook
        self.cuts: set[tuple[str, str]] = set()
        try:
            self._ipt("-N", chain)
        except FirewallError:
            # Left by a killed run in a namespace that outlives runs (a Docker engine's):
            # start from an empty chain with exactly one jump to it.
            self._ipt("-F", chain)
            while self._try("-D", hook, "-j", chain):
                pass
        self._ipt("-I", hook, "-j", chain)

    def _ipt(self, *args: str) -> None:
        p = subprocess.run(
            [self.iptables, "-w", "5", *args], capture_output=True, text=True, timeout=15
        )
        if p.returncode != 0:
            raise FirewallError(f"iptables {' '.join(args)}: {p.stderr.strip()}")

    def _try(self, *args: str) -> bool:
        try:
            self._ipt(*args)
            return True
        except FirewallError:
            return False

    def cut(self, src: Node, dst: Node) -> None:
        """Drop every packet ``src`` sends to ``dst`` (one direction)."""
        if src.uid is None:
            raise FirewallError(f"node {src.name} has no uid of its own: cannot cut its links")
        if (src.name, dst.name) in self.cuts:
            return
        self.add("-m", "owner", "--uid-owner", str(src.uid), "-d", dst.host, "-j", "DROP")
        self.cuts.add((src.name, dst.name))

    def add(self, *rule: str) -> None:
        """Append one rule (its match and target) to this firewall's chain."""
        self._ipt("-A", self.chain, *rule)

    def cut_both(self, a: Node, b: Node) -> None:
        self.cut(a, b)
        self.cut(b, a)

    def heal(self) -> None:
        self._ipt("-F", self.chain)
        self.cuts.clear()

    def close(self) -> None:
        """Heal, then remove the chain and its jump: a namespace that outlives the run (a
        Docker engine's) keeps no rule of it."""
        self.heal()
        self._ipt("-D", self.hook, "-j", self.chain)
        self._ipt("-X", self.chain)

    def rules(self) -> str:
        return subprocess.run(
            [self.iptables, "-S", self.chain], capture_output=True, text=True, timeout=15
        ).stdout
