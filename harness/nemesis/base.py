"""What a nemesis is and what it may touch.

A nemesis injects one kind of fault (``start``) and heals it (``stop``); ``teardown`` undoes
anything still in force and must be safe to call at any moment, twice, after a crash. Each
``start``/``stop`` returns a JSON-able value describing what was done to which target; the
schedule records it in the history as an op of process ``"nemesis"``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from backends.base import Backend
from backends.errors import LockHarnessError
from backends.option_values import Option

from ..runtime import Cluster, Node
from ..runtime.base import ServerKind
from . import options as nemesis_options

if TYPE_CHECKING:
    from workloads.base import StatusArray

    from ..net.firewall import Firewall
    from ..net.proxies import ProxyLinks


class FaultParams(Protocol):
    """What nemeses read of the run's config (``harness.run.config.RunConfig`` has it)."""

    backend: str
    nemesis_interval: float
    nemesis_opts: dict[str, str]
    time_limit: float


class NemesisError(LockHarnessError, ValueError):
    """A nemesis cannot run here or with these options (one line for the user)."""


class NotApplicable(NemesisError):
    """This nemesis cannot act on this backend's servers (e.g. a clock fault on etcd): the
    combination is refused before start, and ``compare`` shows it as "not applicable"."""


@dataclass
class Plan:
    """What is known of a run's servers before any starts: enough to check every option."""

    cfg: FaultParams
    kind: ServerKind
    nodes: list[str]  # the lock's node names, as the runtime will name them
    external: bool = False  # the backend uses a server the harness did not start
    #: a workload's extra servers (a data store): node name (store1 ...) -> its server kind
    extra: dict[str, ServerKind] = field(default_factory=dict)

    def kind_of(self, node: str) -> ServerKind:
        return self.extra.get(node, self.kind)


@dataclass
class NemesisEnv:
    cfg: FaultParams
    backend: Backend
    cluster: Cluster  # the lock's servers
    rng: random.Random
    #: how long a client's claim lasts untended (the workload's lease, e.g. the mutex TTL): the
    #: default length of faults meant to outlast it
    lease_ms: float = 3000.0
    #: servers a workload needs besides the lock's (a data store), by role; their nodes are
    #: targets too (kill, pause, clock by node name)
    extra: dict[str, Cluster] = field(default_factory=dict)
    proxies: ProxyLinks | None = None  # when client links are proxied
    firewall: Firewall | None = None  # node<->node cuts, inside a private namespace
    #: the clients' pids, filled as they fork (before any fault starts)
    worker_pids: list[int] = field(default_factory=list)
    status: StatusArray | None = None  # shared client status array (STATUS_FIELDS per client)

    def clusters(self) -> list[Cluster]:
        """Every cluster the harness started for the run: the lock's first."""
        return [self.cluster, *self.extra.values()]

    def cluster_of(self, node: Node) -> Cluster:
        for c in self.clusters():
            if any(n is node for n in c.nodes):
                return c
        raise KeyError(node.name)


class Nemesis:
    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}  # name -> default, meaning, type and range
    needs_proxies: ClassVar[bool] = False
    needs_clock: ClassVar[bool] = False
    needs_node_uids: ClassVar[bool] = False

    def __init__(self, env: NemesisEnv, opts: dict[str, str]) -> None:
        self.env = env
        self.opts = opts

    @classmethod
    def needs_syncfs(cls, opts: dict[str, str]) -> bool:
        """With these options, the servers' data must live on the filesystem that can lose
        unsynced writes (``harness.runtime.syncfs``): the run mounts it before they start."""
        return False

    def opt(self, name: str, default: Any) -> Any:
        raw = self.opts.get(name)
        if raw is None:
            return default
        return nemesis_options.parse(self.options[name], self.name, name, raw)

    @classmethod
    def validate(cls, plan: Plan, opts: dict[str, str]) -> None:
        """Raise NemesisError (one line) for any value of this nemesis's options that it would
        refuse, or NotApplicable when it cannot act on these servers: all before start."""
        if plan.external:
            raise NotApplicable(
                f"backend {plan.cfg.backend} uses an external server here: nemesis {cls.name} "
                "needs servers that the harness started itself"
            )
        values = {
            k: nemesis_options.parse(o, cls.name, k, opts[k])
            for k, o in cls.options.items()
            if k in opts
        }
        cls.check_plan(plan, values)

    @classmethod
    def check_plan(cls, plan: Plan, values: dict[str, Any]) -> None:
        """Checks that need the servers' kind or node names; ``values`` are already typed."""

    def check(self) -> None:
        """The same checks against the cluster actually started."""
        cluster = self.env.cluster
        extra = {n.name: c.kind for c in self.env.extra.values() for n in c.nodes}
        plan = Plan(self.env.cfg, cluster.kind, [n.name for n in cluster.nodes], extra=extra)
        type(self).validate(plan, self.opts)

    def duration(self) -> float:
        """Seconds the fault stays in force, planned: the schedule starts it only when it can be
        healed before the run's recovery window (``schedule.RECOVERY_SHARE``)."""
        return self.env.cfg.nemesis_interval

    def start(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def stop(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Undo whatever is still in force. Idempotent; never raises for 'already healed'."""
