"""Partition topologies over locations: server nodes and client groups.

A topology says which locations can reach which (``reach``, symmetric, every location reaches
itself); every link between two locations that cannot reach each other is cut. Client groups
are named ``c0``, ``c1`` ...; nodes by their names.
"""

from __future__ import annotations

import math
import random

TOPOLOGIES = {
    "isolate-one": "one node alone; every client group stays with the rest",
    "halves": "a random majority and minority of nodes; client group 0 with the majority, 1 "
    "with the minority",
    "majorities-ring": "each node sees a majority, but no two the same one (5+ nodes)",
    "bridge": "two halves that only one node in the middle can reach both of (3+ nodes)",
    "client-isolate": "no node is cut from another; one client group loses some nodes",
}

Reach = dict[str, set[str]]


def applicable(n_nodes: int) -> list[str]:
    out = ["isolate-one", "halves", "client-isolate"]
    if n_nodes >= 3:
        out.append("bridge")
    if n_nodes >= 5:
        out.append("majorities-ring")
    return out


def _from_components(comps: list[set[str]], locs: list[str]) -> Reach:
    reach = {x: {x} for x in locs}
    for c in comps:
        for x in c:
            reach[x] |= c
    return reach


def make(name: str, nodes: list[str], groups: list[str], rng: random.Random) -> Reach:
    if name not in TOPOLOGIES:
        raise ValueError(f"unknown topology {name!r}; valid: {', '.join(TOPOLOGIES)}")
    if name not in applicable(len(nodes)):
        raise ValueError(f"topology {name!r} needs more nodes than {len(nodes)}")
    locs = nodes + groups
    ns = nodes[:]
    rng.shuffle(ns)
    if name == "isolate-one":
        return _from_components([{ns[0]}, set(ns[1:]) | set(groups)], locs)
    if name == "halves":
        k = len(ns) // 2  # the minority's size; 0 when there is one node
        minority, majority = set(ns[:k]), set(ns[k:])
        sides = [majority, minority]
        for i, g in enumerate(groups):
            sides[i % 2 if i < 2 else rng.randrange(2)].add(g)
        return _from_components(sides, locs)
    if name == "bridge":
        mid = len(ns) // 2
        left, bridge, right = set(ns[:mid]), ns[mid], set(ns[mid + 1 :])
        sides = [left | {bridge}, right | {bridge}]
        for i, g in enumerate(groups):
            sides[i % 2].add(g)
        return _from_components(sides, locs)
    if name == "majorities-ring":
        n = len(ns)
        d = math.ceil((n // 2) / 2)  # each node reaches d on either side: 2d+1 > n/2
        reach: Reach = {x: {x} for x in locs}
        for i, x in enumerate(ns):
            for j in range(-d, d + 1):
                reach[x].add(ns[(i + j) % n])
        for i, g in enumerate(groups):  # a group sees the nodes that node i sees
            view = reach[ns[i % n]] & set(ns)  # a copy: the loop below adds to node i's set
            reach[g] |= view
            for x in view:
                reach[x].add(g)
        return reach
    # client-isolate
    g = rng.choice(groups)
    lost = set(rng.sample(ns, rng.randint(1, max(1, len(ns) - 1)))) if len(ns) > 1 else set(ns)
    reach = {x: set(locs) for x in locs}
    reach[g] -= lost
    for x in lost:
        reach[x].discard(g)
    return reach


def cuts(reach: Reach) -> list[tuple[str, str]]:
    """Directed pairs (a, b) with a != b where a cannot reach b."""
    return sorted((a, b) for a in reach for b in reach if a != b and b not in reach[a])


def components_text(reach: Reach) -> list[list[str]]:
    """The distinct reach sets, for the history and the report."""
    seen = []
    for x in sorted(reach):
        s = sorted(reach[x])
        if s not in seen:
            seen.append(s)
    return seen


def one_way(cuts: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    """Keep one direction of each cut pair, chosen at random (asymmetric partitions)."""
    pairs = sorted({tuple(sorted(c)) for c in cuts})
    return sorted((a, b) if rng.random() < 0.5 else (b, a) for a, b in pairs)
