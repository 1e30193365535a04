"""Packet loss: drop a random share of the packets to or from a node, inside the run's private
network namespace (``iptables -m statistic --mode random``; ``tc netem`` is not available here).

The rules live in a chain of their own jumped to from INPUT: on loopback every packet passes
INPUT at its receiver, so a dropped packet is lost on the way (TCP retransmits it after its
timeout, 200 ms at first and doubling) instead of refused to its sender with an error, as a DROP
in OUTPUT would be. Each node listens on its own 127.0.0.x address, so ``-d`` matches what is
sent to it (by clients and peers) and ``-s`` what it sends from its address (its replies).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ..net import netns
from ..net.firewall import Firewall, FirewallError
from . import options as o
from .base import Nemesis, NemesisError, NotApplicable, Plan

CHAIN = "LOCKHARNESS-LOSS"
DIRECTIONS = ("both", "in", "out")
LINKS = ("all", "clients")


def in_host_netns() -> bool:
    """This thread is still in the namespace of the process that started the harness: rules
    made here would touch that host's loopback. (The plan's checks already require the private
    namespace; this guards the in-process uses. Unreadable: trust the plan.)"""
    try:
        here = os.readlink("/proc/thread-self/ns/net")
        return here == os.readlink(f"/proc/{os.getppid()}/ns/net")
    except OSError:
        return False


class PacketLoss(Nemesis):
    name = "packet-loss"
    description = (
        "drop a random share of the packets to and/or from a node (iptables statistic match in "
        "the run's private namespace): TCP retransmissions stretch operations"
    )
    options = {
        "probability": o.number("0.3: share of matching packets dropped", hi=1, lo_open=True),
        "direction": o.name(
            "both: in (packets sent to the node: requests, peers' messages), out (packets it "
            "sends: replies) or both"
        ),
        "link": o.name("all: all (client and peer ports) or clients (its client port only)"),
        "target": o.name("all: all, random or a node name"),
    }

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.fw: Firewall | None = None

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        words = {"direction": DIRECTIONS, "link": LINKS}
        for opt, valid in words.items():
            if opt in values and values[opt] not in valid:
                raise NemesisError(
                    f"nemesis {cls.name} option {opt}={values[opt]!r} is not accepted: give "
                    + ", ".join(valid)
                )
        t = values.get("target", "all")
        if t not in ("all", "random", *plan.nodes, *plan.extra):
            raise NemesisError(
                f"nemesis {cls.name} target {t!r} is not a node of this run; valid: all, "
                f"random, {', '.join([*plan.nodes, *plan.extra])}"
            )
        cfg = plan.cfg
        if (
            getattr(cfg, "runtime", "local") != "local"
            or getattr(cfg, "netns", "auto") == "off"
            or getattr(cfg, "toxiproxy", None)
        ):
            raise NotApplicable(
                f"nemesis {cls.name} needs the run's private network namespace (--runtime "
                "local, --netns auto or on, no --toxiproxy): its rules must touch no host"
            )
        ok, why = netns.available()
        if not ok:
            raise NotApplicable(f"nemesis {cls.name} needs a private network namespace: {why}")

    def rules(self, host: str, ports: list[int]) -> list[list[str]]:
        """The iptables rules (match and target) that drop this fault's share for one node."""
        p = f"{self.opt('probability', 0.3):.6f}"
        d = self.opt("direction", "both")
        drop = ["-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"]
        out = []
        for port in ports or [None]:
            on = [] if port is None else ["-p", "tcp"]
            if d in ("in", "both"):
                out.append(["-d", host, *on, *([] if port is None else ["--dport", str(port)])])
            if d in ("out", "both"):
                out.append(["-s", host, *on, *([] if port is None else ["--sport", str(port)])])
        return [r + drop for r in out]

    def start(self) -> dict[str, Any]:
        if in_host_netns():  # never drop packets on the host's own loopback
            return {"injected": False, "why": "not inside the run's private network namespace"}
        nodes = {n.name: n for c in self.env.clusters() for n in c.nodes}
        t = self.opt("target", "all")
        if t == "random":
            chosen = [self.env.rng.choice(self.env.cluster.nodes)]
        elif t == "all":
            chosen = list(self.env.cluster.nodes)
        else:
            chosen = [nodes[t]]
        link = self.opt("link", "all")
        self.fw = Firewall(CHAIN, "INPUT")
        try:
            for n in chosen:
                for rule in self.rules(n.host, [n.port] if link == "clients" else []):
                    self.fw.add(*rule)
        except Exception:
            self.teardown()
            raise
        return {
            "nodes": [n.name for n in chosen],
            "probability": self.opt("probability", 0.3),
            "direction": self.opt("direction", "both"),
            "link": link,
        }

    def stop(self) -> dict[str, Any] | None:
        if self.fw is None:
            return None
        self.teardown()
        return {"healed": True}

    def teardown(self) -> None:
        fw, self.fw = self.fw, None
        if fw is not None:
            # flush, unhook and delete the chain: no rule outlives the fault (and the namespace
            # takes any rule with it when the run's last process ends)
            with contextlib.suppress(FirewallError):
                fw.close()
