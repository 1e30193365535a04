"""Fault periods from the nemesis ops of a history, and what each did, in words.

A period runs from a ``start-X`` op to the matching ``stop-X`` op; the values those ops carry
(what the nemesis returned) say which nodes, clients or links were hit, and how the fault was
healed. Jepsen's bare ``start``/``stop`` count as fault "nemesis".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from checkers.history import NEMESIS, Op


@dataclass(slots=True)
class Period:
    name: str
    start: int  # ns
    end: int | None = None  # ns; None: never healed
    start_value: Any = None
    stop_value: Any = None
    error: str | None = None  # the injection failed
    stop_error: str | None = None
    one_shot: bool = False
    # ns: when the start returned, so the fault was surely in force (a client-pause may look
    # for a holder for seconds after its invocation); None while it has not returned
    in_force: int | None = None

    @property
    def injected(self) -> bool:
        v = self.start_value
        return self.error is None and not (isinstance(v, dict) and v.get("injected") is False)

    def text(self) -> str:
        return describe(self)


def periods(ops: Iterable[Op]) -> list[Period]:
    """Every fault period, in start order (one pass; only nemesis ops are looked at)."""
    open_: dict[str, Period] = {}
    out: list[Period] = []
    for op in ops:
        if op.process != NEMESIS:
            continue
        f = op.f if op.f not in ("start", "stop") else f"{op.f}-{NEMESIS}"
        if f.startswith("start-"):
            name = f[6:]
            p = open_.get(name)
            if p is None:
                p = open_[name] = Period(name, op.time)
                out.append(p)
            if op.type != "invoke" and p.in_force is None:
                p.in_force = op.time
            if op.value is not None:
                p.start_value = op.value
            if op.error is not None:
                p.error = op.error
        elif f.startswith("stop-"):
            p = open_.get(f[5:])
            if p is None:
                continue
            p.end = op.time if p.end is None else p.end
            if op.value is not None:
                p.stop_value = op.value
            if op.error is not None:
                p.stop_error = op.error
            if op.type != "invoke":  # the stop completed: the fault is healed
                del open_[f[5:]]
        elif op.type == "invoke":  # a one-shot fault: a thin band at its moment
            out.append(Period(f, op.time, op.time, op.value, one_shot=True))
    return out


def _names(xs: Any) -> str:
    if isinstance(xs, list | tuple | set):
        return ", ".join(str(x) for x in xs)
    return str(xs)


def _secs(p: Period) -> str:
    if p.end is None:
        return "never healed"
    return f"{(p.end - p.start) / 1e9:.1f} s"


def _nodes_first(name: str) -> tuple[bool, str]:
    """Nodes, then client groups (c0, c1, ...): "{n1, n2, c0}"."""
    return (re.fullmatch(r"c\d+", name) is not None, name)


def _partition(v: dict[str, Any], p: Period) -> str:
    reach = v.get("reach")
    topo = v.get("topology")
    head = f"partition {topo}" if topo else "partition"
    extra = []
    if isinstance(reach, list) and reach and all(isinstance(r, list) for r in reach):
        sides = [sorted(map(str, r), key=_nodes_first) for r in reach]
        everyone = sorted(set().union(*sides), key=_nodes_first)
        if len(sides) > 2 and everyone in sides:  # a bridge node's view: it reaches all sides
            sides.remove(everyone)
        text = f"{head}: " + " | ".join("{" + ", ".join(r) + "}" for r in sides)
        shared = sorted(set(sides[0]).intersection(*sides[1:]), key=_nodes_first)
        shared = shared if len(sides) > 1 else []
        if shared:
            extra.append(f"{', '.join(shared)} on every side")
    else:
        text = head
    if any("replies lost" in str(c) for c in v.get("client_cuts") or []):
        extra.append("one way: requests pass, replies are lost")
    if v.get("not_cut"):
        extra.append(f"node links not cut ({v.get('why_not_cut') or 'no private network'})")
    extra.append(f"healed after {_secs(p)}" if p.end is not None else "never healed")
    return text + " (" + "; ".join(extra) + ")"


def _kill(v: dict[str, Any], p: Period) -> str:
    node = v.get("node", "a node")
    stop = p.stop_value if isinstance(p.stop_value, dict) else {}
    if p.end is None:
        return f"kill {node} (never restarted)"
    if not stop:
        return f"kill {node} (down {_secs(p)})"
    data = "data wiped" if stop.get("wiped") else "data kept"
    lost = v.get("lost_unsynced")
    if isinstance(lost, dict) and not stop.get("wiped"):  # kill lose_unsynced=true
        data = f"a power cut: {lost.get('pages')} unsynced pages lost, the rest kept"
    ready = "" if stop.get("ready", True) else ", did not come back ready"
    return f"kill {node} (restarted after {_secs(p)}, {data}{ready})"


def _link(v: dict[str, Any], p: Period) -> str:
    toxic, a = v.get("toxic"), v.get("attributes") or {}
    nodes = _names(v.get("nodes") or "all nodes")
    share = v.get("toxicity")
    if toxic == "latency":
        what = f"add {a.get('latency')} ± {a.get('jitter')} ms latency"
    elif toxic == "reset_peer":
        what = "reset connections"
    elif toxic == "bandwidth":
        what = f"limit bandwidth to {a.get('rate')} KB/s"
    elif toxic == "timeout":
        pct = f"{share:.0%} of " if isinstance(share, int | float) and share < 1 else ""
        what = f"black-hole {pct}connections"
    else:
        what = f"{toxic} toxic"
    return f"{what} on client links to {nodes} for {_secs(p)}"


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def describe(p: Period) -> str:
    """What the fault did, in words: "kill n3 (restarted after 2.0 s, data kept)"."""
    if p.error is not None:
        return f"{p.name}: the injection failed ({p.error})"
    v = p.start_value if isinstance(p.start_value, dict) else {}
    if v.get("injected") is False:
        return f"{p.name}: nothing injected ({v.get('why') or 'no target'})"
    heal = f"; the heal failed ({p.stop_error})" if p.stop_error else ""
    stop = p.stop_value if isinstance(p.stop_value, dict) else {}
    if stop.get("cut_short") is True:
        planned = f" ({stop['planned_s']:g} s planned)" if _num(stop.get("planned_s")) else ""
        heal += f"; cut short by the end of the run{planned}, so not counted as injected"
    name = p.name
    if name == "partition":
        text = _partition(v, p)
    elif name == "kill":
        text = _kill(v, p)
    elif name == "pause":
        text = f"pause {v.get('node', 'a node')} (SIGSTOP, resumed after {_secs(p)})"
    elif name == "client-pause":
        key = f", holding lock `{v['key']}`" if "key" in v else ""
        text = f"pause client process {v.get('process', '?')}{key} for {_secs(p)}"
    elif name == "client-stall":
        key = f", holding lock `{v['key']}`" if "key" in v else ""
        how = "in a pure Python loop" if v.get("how") == "spin" else "with the GIL held"
        text = f"stall client process {v.get('process', '?')}{key}, {how}, for {_secs(p)}"
    elif name == "clock" and _num(v.get("offset_ms")):
        off = v.get("offset_ms")
        shift = f"{off:+g} ms"
        strobe = f", strobing every {v['strobe_ms']:g} ms" if _num(v.get("strobe_ms")) else ""
        text = f"move {v.get('node', 'a node')}'s clock {shift}{strobe} for {_secs(p)}"
    elif "toxic" in v:
        text = _link(v, p)
    elif v:
        fields = ", ".join(f"{k} {_names(x)}" for k, x in v.items())
        text = f"{name}: {fields}" + ("" if p.one_shot else f" for {_secs(p)}")
    elif p.start_value is not None:
        text = f"{name}: {p.start_value}"
    else:
        text = name if p.one_shot else f"{name} for {_secs(p)}"
    return text + heal


def affected_process(p: Period) -> Any:
    """The client process a fault froze (client-pause), or None."""
    v = p.start_value
    if p.name == "client-pause" and isinstance(v, dict) and p.injected:
        return v.get("process")
    return None


def overlapping(ps: Sequence[Period], lo: int, hi: int) -> list[Period]:
    """Periods in force at some moment of [lo, hi] (unhealed ones run to the end)."""
    return [p for p in ps if p.start <= hi and (p.end is None or p.end >= lo)]
