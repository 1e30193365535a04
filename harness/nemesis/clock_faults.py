"""Clock faults: move one server's wall clock through the LD_PRELOAD clock shim."""

from __future__ import annotations

import threading
from typing import Any

from ..clock import MAX_OFFSET_S
from ..runtime import Node
from . import options as o
from .base import Nemesis, NotApplicable, Plan
from .process import TARGET, check_target, pick_node


class Clock(Nemesis):
    name = "clock"
    description = (
        "bump (or strobe) one server's wall clock (CLOCK_REALTIME) by an offset through the "
        "clock shim; libc-based servers only (not Go: etcd)"
    )
    options = {
        "offset_ms": o.number(
            "2 x ttl: the bump; negative moves the clock back",
            lo=-MAX_OFFSET_S * 1000,
            hi=MAX_OFFSET_S * 1000,
        ),
        "strobe_ms": o.number("0: when >= 1, flip between the offset and the true time this often"),
        "target": TARGET,
    }
    needs_clock = True

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.node: Node | None = None
        self._strobing: threading.Event | None = None
        self._strober: threading.Thread | None = None

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        target = values.get("target", "random")
        named = [t.strip() for t in target.split(",")] if target != "random" else []
        known = [n for n in named if n in plan.nodes or n in plan.extra]
        for kind in [plan.kind_of(n) for n in known] or [plan.kind]:  # random: the lock's
            if not kind.libc_clock:
                raise NotApplicable(
                    f"nemesis clock cannot move {kind.kind}'s clock: its binary reads time "
                    "without libc (Go), so the LD_PRELOAD shim never sees it; unsupported, not "
                    "passed"
                )
        strobe = values.get("strobe_ms", 0.0)
        if 0 < strobe < 1:  # a faster strobe would only spin the harness
            raise o.refuse(
                cls.options["strobe_ms"],
                cls.name,
                "strobe_ms",
                str(strobe),
                "0 (no strobe) or a number >= 1",
            )
        check_target(cls, plan, values)

    def start(self) -> dict[str, Any]:
        from ..clock import set_offset

        self.node = pick_node(self)
        offset = self.opt("offset_ms", 2.0 * self.env.lease_ms)
        strobe = self.opt("strobe_ms", 0.0)
        set_offset(self.node.dir, offset / 1000)
        value: dict[str, Any] = {"node": self.node.name, "offset_ms": offset}
        if strobe > 0:
            self._strobing = threading.Event()
            self._strober = threading.Thread(
                target=_strobe,
                args=(self.node, offset / 1000, strobe / 1000, self._strobing),
                name="clock-strobe",
                daemon=True,
            )
            self._strober.start()
            value["strobe_ms"] = strobe
        return value

    def stop(self) -> dict[str, Any] | None:
        from ..clock import set_offset

        if self._strobing is not None:
            self._strobing.set()
            if self._strober is not None:
                self._strober.join(5)
            self._strobing = self._strober = None
        if self.node is None:
            return None
        node, self.node = self.node, None
        set_offset(node.dir, 0.0)
        return {"node": node.name, "offset_ms": 0}

    def teardown(self) -> None:
        self.stop()


def _strobe(node: Node, offset_s: float, period_s: float, done: threading.Event) -> None:
    """Flip the node's clock between offset and true time until ``done``; the schedule's stop
    (or teardown) always sets it, so the loop is bounded by the fault's duration."""
    from ..clock import set_offset

    on = True
    while not done.wait(period_s):
        on = not on
        set_offset(node.dir, offset_s if on else 0.0)
