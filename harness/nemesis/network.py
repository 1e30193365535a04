"""Network faults: partitions (node<->node by iptables, client<->node by proxies) and link
faults on the client->node proxies (latency, resets, low bandwidth, flaky connections)."""

from __future__ import annotations

from typing import Any

from ..net import topology
from ..net.proxies import CUT
from . import options as o
from .base import Nemesis, NemesisError, NotApplicable, Plan


class Partition(Nemesis):
    name = "partition"
    description = (
        "cut the network into groups of nodes and client groups: node<->node links "
        "by iptables in the private namespace, client<->node links by the proxies"
    )
    options = {
        "topology": o.name("random: " + ", ".join(topology.TOPOLOGIES)),
        "one_way": o.flag(
            "false: cut each node pair in one random direction only, and let client "
            "requests through while their replies are lost"
        ),
    }
    needs_proxies = True
    needs_node_uids = True

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.active = False

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        t = values.get("topology")
        n = len(plan.nodes)
        fits = topology.applicable(n)
        if t is not None and t not in fits:
            # a known topology that needs more nodes is this backend's limit; a typo is the user's
            error = NotApplicable if t in topology.TOPOLOGIES else NemesisError
            raise error(
                f"nemesis partition topology {t!r} does not apply to {n} node(s); valid: "
                + (", ".join(fits) or "none")
            )

    def start(self) -> dict[str, Any]:
        env = self.env
        nodes = {n.name: n for n in env.cluster.nodes}
        groups = [f"c{g}" for g in range(env.proxies.groups)]
        name = self.opts.get("topology") or env.rng.choice(topology.applicable(len(nodes)))
        reach = topology.make(name, list(nodes), groups, env.rng)
        one_way = self.opt("one_way", False)
        cuts = topology.cuts(reach)
        node_pairs = [(a, b) for a, b in cuts if a in nodes and b in nodes]
        if one_way:
            node_pairs = topology.one_way(node_pairs, env.rng)
        node_cuts, client_cuts, skipped = [], [], []
        for a, b in node_pairs:
            if env.firewall is None or nodes[a].uid is None:
                skipped.append(f"{a}->{b}")
                continue
            env.firewall.cut(nodes[a], nodes[b])
            node_cuts.append(f"{a}->{b}")
        streams = ("downstream",) if one_way else ("upstream", "downstream")
        for a, b in cuts:
            if a in groups and b in nodes:  # each client link once, by its proxy
                env.proxies.cut(int(a[1:]), nodes[b], streams)
                client_cuts.append(f"{a}-{b}" + (" (replies lost)" if one_way else ""))
        self.active = True
        value: dict[str, Any] = {
            "topology": name,
            "reach": topology.components_text(reach),
            "node_cuts": node_cuts,
            "client_cuts": client_cuts,
        }
        if skipped:
            value["not_cut"] = skipped
            value["why_not_cut"] = (
                "no private network namespace (needs root)"
                if env.firewall is None
                else f"{env.cluster.kind.kind} nodes run as one system user, not under uids "
                "of their own, so their packets to each other cannot be told apart"
            )
            if not node_cuts and not client_cuts:  # nothing was cut: not a fault that fired
                value |= {"injected": False, "why": value["why_not_cut"]}
        return value

    def stop(self) -> dict[str, Any] | None:
        if not self.active:
            return None
        self.teardown()
        return {"healed": True}

    def teardown(self) -> None:
        if self.env.firewall is not None:
            self.env.firewall.heal()
        if self.env.proxies is not None:
            self.env.proxies.remove_all(CUT)
        self.active = False


TARGET = o.name("all: all, random or a node name")


class LinkFault(Nemesis):
    """A toxic on the client->node proxies of one node (target) or of all (target=all)."""

    toxic: str
    stream = "downstream"
    needs_proxies = True

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.on: list[str] = []

    def attributes(self) -> dict[str, Any]:
        raise NotImplementedError

    def toxicity(self) -> float:
        return 1.0

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        t = values.get("target", "all")
        if t not in ("all", "random", *plan.nodes):
            raise NemesisError(
                f"nemesis {cls.name} target {t!r} is not a node of this run; valid: all, "
                f"random, {', '.join(plan.nodes)}"
            )

    def start(self) -> dict[str, Any]:
        px = self.env.proxies
        t = self.opts.get("target", "all")
        nodes = self.env.cluster.nodes
        if t == "random":
            t = self.env.rng.choice(nodes).name
        chosen = [n for n in nodes if t == "all" or n.name == t]
        attrs = self.attributes()
        for g in range(px.groups):
            for n in chosen:
                proxy = px.name(g, n)
                px.add(
                    proxy,
                    self.toxic,
                    attrs,
                    self.stream,
                    self.toxicity(),
                    toxic=f"nemesis-{self.name}",
                )
                self.on.append(proxy)
        return {
            "toxic": self.toxic,
            "attributes": attrs,
            "toxicity": self.toxicity(),
            "nodes": [n.name for n in chosen],
        }

    def stop(self) -> dict[str, Any] | None:
        if not self.on:
            return None
        self.teardown()
        return {"healed": True}

    def teardown(self) -> None:
        if self.env.proxies is not None:
            self.env.proxies.remove_all(f"nemesis-{self.name}")
        self.on = []


class Latency(LinkFault):
    name = "latency"
    description = "add latency (with jitter) to client->node links"
    options = {
        "latency_ms": o.integer("100: added to each chunk of data"),
        "jitter_ms": o.integer("50: +- this much at random"),
        "target": TARGET,
    }
    toxic = "latency"

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.opt("latency_ms", 100), "jitter": self.opt("jitter_ms", 50)}


class Reset(LinkFault):
    name = "reset"
    description = "reset client->node connections (TCP RST) as data arrives"
    options = {"after_ms": o.integer("0: reset this long after data"), "target": TARGET}
    toxic = "reset_peer"
    stream = "upstream"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.opt("after_ms", 0)}


class Slow(LinkFault):
    name = "slow"
    description = "limit client->node links' bandwidth"
    options = {"rate_kbs": o.integer("1: KB/s (0 would mean no limit)", lo=1), "target": TARGET}
    toxic = "bandwidth"

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.opt("rate_kbs", 1)}


class Flaky(LinkFault):
    name = "flaky"
    description = "black-hole a share of client->node connections (timeout toxic, toxicity < 1)"
    options = {
        "share": o.number("0.3: share of connections black-holed", hi=1, lo_open=True),
        "target": TARGET,
    }
    toxic = "timeout"
    stream = "upstream"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": 0}

    def toxicity(self) -> float:
        return self.opt("share", 0.3)
