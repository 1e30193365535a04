"""Clock faults: move one server's wall clock through the LD_PRELOAD clock shim."""

from __future__ import annotations

from typing import Any

from ..runtime import Node
from .base import Nemesis, NemesisError


class Clock(Nemesis):
    name = "clock"
    description = (
        "bump one server's wall clock (CLOCK_REALTIME) by an offset through the "
        "clock shim; libc-based servers only (not Go: etcd)"
    )
    options = {
        "offset_ms": "2 x ttl: the bump; negative moves the clock back",
        "target": "random: a node name or random",
    }
    needs_clock = True

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.node: Node | None = None

    def check(self) -> None:
        from .process import _pick_node

        self.opt("offset_ms", 0.0)
        kind = self.env.cluster.kind
        if not kind.libc_clock:
            raise NemesisError(
                f"nemesis clock cannot move {kind.kind}'s clock: its binary reads time without "
                "libc (Go), so the LD_PRELOAD shim never sees it; unsupported, not passed"
            )
        _pick_node(self, check_only=True)

    def start(self) -> dict[str, Any]:
        from ..clock import set_offset
        from .process import _pick_node

        self.node = _pick_node(self)
        offset = self.opt("offset_ms", 2.0 * self.env.cfg.ttl_ms)
        set_offset(self.node.dir, offset / 1000)
        return {"node": self.node.name, "offset_ms": offset}

    def stop(self) -> dict[str, Any] | None:
        from ..clock import set_offset

        if self.node is None:
            return None
        node, self.node = self.node, None
        set_offset(node.dir, 0.0)
        return {"node": node.name, "offset_ms": 0}

    def teardown(self) -> None:
        self.stop()
