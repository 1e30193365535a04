"""Client -> node links through Toxiproxy-API proxies: one proxy per (client group, node).

Clients are split into groups (client ``i`` is in group ``i % groups``); each group reaches each
node through its own proxy, so a partition can cut one group off some nodes and not others.

A real Toxiproxy may be shared (by runs one after another, or at once): the proxies' names carry
a ``prefix`` unique to the run, every change touches only this run's proxies (no global
``/reset``), and ``close()`` deletes them, so a run leaves nothing behind and never collides
with another's.
"""

from __future__ import annotations

from backends.base import Endpoint
from harness.toxiproxy.client import ToxiproxyClient, ToxiproxyError

from ..runtime.base import Node

CUT = "partition"  # name prefix of the toxics that black-hole a cut link


class ProxyLinks:
    def __init__(
        self, api: ToxiproxyClient, nodes: list[Node], groups: int, prefix: str = ""
    ) -> None:
        self.api = api
        self.nodes = nodes
        self.groups = groups
        self.prefix = prefix
        self.listen: dict[str, tuple[str, int]] = {}
        try:
            for g in range(groups):
                for n in nodes:
                    name = self.name(g, n)
                    p = api.create_proxy(name, "127.0.0.1:0", f"{n.host}:{n.port}")
                    host, port = p["listen"].rsplit(":", 1)
                    self.listen[name] = (host, int(port))
        except BaseException:
            self.close()  # the ones already made must not outlive a failed setup
            raise

    def name(self, group: int, node: Node) -> str:
        return f"{self.prefix}g{group}-{node.name}"

    def group_of(self, client_index: int) -> int:
        return client_index % self.groups

    def endpoints(self, client_index: int) -> list[Endpoint]:
        g = self.group_of(client_index)
        return [Endpoint(n.name, *self.listen[self.name(g, n)]) for n in self.nodes]

    def all(self) -> list[str]:
        return list(self.listen)

    def cut(
        self, group: int, node: Node, streams: tuple[str, ...] = ("upstream", "downstream")
    ) -> None:
        """Black-hole one link: requests hang, as in a real partition. With only
        ``downstream``, requests still reach the node and only the replies are lost."""
        name = self.name(group, node)
        for stream in streams:
            self.add(name, "timeout", {"timeout": 0}, stream, toxic=f"{CUT}-{stream}")

    def add(
        self,
        proxy: str,
        type_: str,
        attrs: dict,
        stream: str = "downstream",
        toxicity: float = 1.0,
        toxic: str | None = None,
    ) -> None:
        self.api.add_toxic(proxy, type_, attrs, stream=stream, toxicity=toxicity, name=toxic)

    def remove_all(self, prefix: str) -> None:
        """Remove the toxics whose names start with ``prefix`` from every proxy."""
        for proxy in self.all():
            for t in self.api.toxics(proxy):
                if t["name"].startswith(prefix):
                    try:
                        self.api.remove_toxic(proxy, t["name"])
                    except ToxiproxyError as e:
                        if e.status != 404:
                            raise

    def close(self) -> None:
        """Delete this run's proxies (closing their connections); an unreachable server or a
        proxy already gone is not an error here: this runs in teardown."""
        for name in list(self.listen):
            try:
                self.api.delete_proxy(name)
            except ToxiproxyError as e:
                if e.status not in (0, 404):
                    raise
            del self.listen[name]
