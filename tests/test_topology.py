"""Every partition topology, for every cluster size it applies to: a symmetric reach relation in
which every location reaches itself, and each topology's own promise."""

from __future__ import annotations

import random

import pytest

from harness.net import topology


def _cases():
    for n in range(1, 8):
        for name in topology.applicable(n):
            for g in (1, 2, 3):
                yield name, n, g


@pytest.mark.parametrize("name, n, g", list(_cases()))
def test_topology_is_a_symmetric_reach(name: str, n: int, g: int) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    groups = [f"c{i}" for i in range(g)]
    for seed in range(5):
        reach = topology.make(name, nodes, groups, random.Random(seed))
        assert set(reach) == set(nodes) | set(groups)
        for x, seen in reach.items():
            assert x in seen
            for y in seen:
                assert x in reach[y], (name, x, y)  # symmetric
        if n > 1:  # with one node, a partition can only cut clients from it
            for grp in groups:  # otherwise every client group still reaches some node
                assert reach[grp] & set(nodes), (name, grp)
        if name == "majorities-ring":
            majority = n // 2 + 1
            views = [frozenset(reach[x] & set(nodes)) for x in nodes]
            assert all(len(v) >= majority for v in views)
            assert len(set(views)) == n  # no two nodes see the same majority
        if n > 1 and name != "client-isolate":
            assert topology.cuts(reach), name  # a partition cuts something
