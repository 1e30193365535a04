"""Process faults: kill and restart a server, pause a server, pause a lock holder."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from workloads.base import HOLDING, STATUS_FIELDS

from ..runtime import Node
from ..runtime.lifeline import descendants
from . import options as o
from .base import Nemesis, NemesisError, NotApplicable, Plan

TARGET = o.name("random: random, a node name, or nodes taken in rotation (n1,n2,n3)")


def target_names(nemesis: str, target: str, nodes: list[str]) -> list[str]:
    """The nodes a ``target`` names in rotation ([] for random); NemesisError for a name that
    is not a node of this run."""
    if target == "random":
        return []
    names = [t.strip() for t in target.split(",")]
    bad = [t for t in names if t not in nodes]
    if bad:
        raise NemesisError(
            f"nemesis {nemesis} target {bad[0]!r} is not a node of this run; valid: random, "
            + ", ".join(nodes)
            + ", or a comma-separated list of nodes"
        )
    return names


def check_target(cls: type[Nemesis], plan: Plan, values: dict[str, Any]) -> list[str]:
    """The named targets ([] for random): the lock's nodes or a workload's extra ones."""
    return target_names(cls.name, values.get("target", "random"), plan.nodes + list(plan.extra))


def pick_node(nem: Nemesis) -> Node:
    """``target``: random (one of the lock's nodes), a node name, or a comma-separated list
    taken in rotation (so that successive faults hit distinct nodes, e.g. n1,n2,n3 to wipe a
    majority one by one). Names may be those of a workload's extra servers (store1 ...)."""
    nodes = {n.name: n for c in nem.env.clusters() for n in c.nodes}
    names = target_names(nem.name, nem.opts.get("target", "random"), list(nodes))
    if not names:
        return nem.env.rng.choice(nem.env.cluster.nodes)
    turn = getattr(nem, "_turn", 0)
    nem._turn = turn + 1
    return nodes[names[turn % len(names)]]


class Kill(Nemesis):
    name = "kill"
    description = "SIGKILL a server, restart it after down_ms (with or without its data)"
    options = {
        "target": TARGET,
        "down_ms": o.number("interval: how long the node stays down before its restart"),
        "wipe": o.flag("false: restart with an empty data directory (no persistence)"),
        "lose_unsynced": o.flag(
            "false: a power cut: the killed server also loses what it wrote but never fsynced "
            "(its data dir on the harness's own filesystem, harness/runtime/syncfs.py)"
        ),
    }

    @classmethod
    def needs_syncfs(cls, opts: dict[str, str]) -> bool:
        raw = opts.get("lose_unsynced")
        return raw is not None and o.parse(
            cls.options["lose_unsynced"], cls.name, "lose_unsynced", raw
        )

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        check_target(cls, plan, values)
        if not values.get("lose_unsynced"):
            return
        from ..runtime import syncfs

        ok, why = syncfs.available()
        if getattr(plan.cfg, "runtime", "local") != "local":
            ok, why = False, "servers the local runtime starts (--runtime local)"
        if not ok:
            raise NotApplicable(f"nemesis kill lose_unsynced=true needs {why}")
        for kind in {id(k): k for k in [plan.kind, *plan.extra.values()]}.values():
            refusal = getattr(kind, "power_cut_refusal", lambda: None)()
            if refusal:  # the harness's own non-durable setting: never the lock's verdict
                raise NotApplicable(f"nemesis kill lose_unsynced=true: {refusal}")

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.node: Node | None = None

    def duration(self) -> float:
        down = self.opt("down_ms", 0.0)
        # the lock may need its killed servers down for longer (Redlock's delayed restart)
        down = max(down, self.env.backend.min_down_ms(self.env.lease_ms))
        return down / 1000 if down else self.env.cfg.nemesis_interval

    def start(self) -> dict[str, Any]:
        self.node = pick_node(self)
        pid = self.node.pid
        cluster = self.env.cluster_of(self.node)
        cluster.kill_node(self.node)
        value: dict[str, Any] = {"node": self.node.name, "pid": pid, "signal": "SIGKILL"}
        if self.opt("lose_unsynced", False):  # the server is dead: now the power goes too
            from ..runtime import syncfs

            value["lost_unsynced"] = syncfs.lose(self.node)  # pages and files never fsynced
        then = cluster.kind.after_kill(self.node, cluster.nodes)
        if then:
            value["then"] = then
        return value

    def stop(self) -> dict[str, Any] | None:
        if self.node is None:
            return None
        node, self.node = self.node, None
        wipe = self.opt("wipe", False)
        cluster = self.env.cluster_of(node)
        cluster.start_node(node, fresh=wipe)
        try:
            cluster.wait_ready([node])
            ready = True
        except Exception:
            ready = False
        return {
            "node": node.name,
            "pid": node.pid,
            "restarted": True,
            "wiped": wipe,
            "ready": ready,
        }

    def teardown(self) -> None:
        self.node = None  # the runtime stops every server at the end anyway


class Pause(Nemesis):
    name = "pause"
    description = "SIGSTOP a server, SIGCONT it after the interval"
    options = {"target": TARGET}
    check_plan = classmethod(check_target)

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.node: Node | None = None

    def start(self) -> dict[str, Any]:
        self.node = pick_node(self)
        cluster = self.env.cluster_of(self.node)
        cluster.pause_node(self.node)
        return {"node": self.node.name, "pid": self.node.pid, "signal": cluster.pause_how[0]}

    def stop(self) -> dict[str, Any] | None:
        if self.node is None:
            return None
        node, self.node = self.node, None
        cluster = self.env.cluster_of(node)
        cluster.resume_node(node)
        return {"node": node.name, "pid": node.pid, "signal": cluster.pause_how[1]}

    def teardown(self) -> None:
        self.stop()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class ClientPause(Nemesis):
    name = "client-pause"
    description = (
        "SIGSTOP the worker process of a client while it holds a lock, past the TTL "
        "(a GC pause), then SIGCONT it"
    )
    options = {"pause_ms": o.number("2 x ttl: how long the holder stays frozen", lo_open=True)}
    FIND_HOLDER_S = 3.0
    #: a schedule file may name which holder (harness.nemesis.schedule.Target)
    client_target = True

    def __init__(self, env, opts) -> None:
        super().__init__(env, opts)
        self.pid: int | None = None
        self.children: list[int] = []  # the worker's own children: a process adapter
        #: set by a schedule before start: ("client", i) or ("key", k); None: a random holder
        self.want: tuple[str, int] | None = None

    def duration(self) -> float:
        return self.opt("pause_ms", 2.0 * self.env.lease_ms) / 1000

    def _holder(self) -> tuple[int, int, int] | None:
        st, n = self.env.status, len(self.env.worker_pids)
        order = list(range(n))
        self.env.rng.shuffle(order)
        by, which = self.want or ("", -1)
        if by == "client":  # that client, once it holds (it may hold already)
            order = [which] if which < n else []
        deadline = time.monotonic() + self.FIND_HOLDER_S
        while time.monotonic() < deadline:
            for i in order:
                b = i * STATUS_FIELDS
                if st[b + 1] == HOLDING and (by != "key" or st[b + 2] == which):
                    return i, st[b], st[b + 2]
            time.sleep(0.0005)
        return None

    def _not_found(self) -> dict[str, Any]:
        by, which = self.want or ("", -1)
        who = {"client": f"client {which} held no lock", "key": f"no client held key {which}"}
        why = who.get(by, "no client held a lock")
        return {"injected": False, "why": f"{why} within {self.FIND_HOLDER_S} s"}

    def start(self) -> dict[str, Any]:
        found = self._holder()
        if found is None:
            return self._not_found()
        i, process, key = found
        self.pid = self.env.worker_pids[i]
        os.kill(self.pid, signal.SIGSTOP)
        # The client is the worker and what it started (a process adapter is the library):
        # both freeze, as one client's GC pause would.
        self.children = descendants(self.pid)
        for c in self.children:
            _signal(c, signal.SIGSTOP)
        started = {
            "client": i,
            "process": process,
            "key": str(key),
            "pid": self.pid,
            "signal": "SIGSTOP",
        }
        return {**started, "children": self.children} if self.children else started

    def stop(self) -> dict[str, Any] | None:
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        children, self.children = self.children, []
        for c in children:  # first, so an adapter's reply is on its way when its worker reads
            _signal(c, signal.SIGCONT)
        _signal(pid, signal.SIGCONT)
        return {"pid": pid, "signal": "SIGCONT"}

    def teardown(self) -> None:
        self.stop()
