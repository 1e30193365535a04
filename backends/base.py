"""The one small interface every lock backend implements.

A backend describes the servers it needs (``servers()``) and makes a ``LockClient`` per logical
client inside that client's worker process. Outcomes map onto the history's op types:

- a method that returns took effect (``ok``);
- ``LockFailed`` (and its subclasses) means it certainly did not (``fail``);
- any other exception means the outcome is unknown (``info``): the client is retired.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .option_values import Option, option_text

#: How a lock's grants end on their own, declared by each backend (``Backend.expiry``) and used by
#: the lease model (checkers/model.py): ``none`` (no TTL: a grant lasts until released or its
#: session or transaction ends), ``ttl`` (it runs out ``ttl_ms`` after the acquire's invocation at
#: the earliest, extended only by ``renew`` calls, which the history records), ``hidden`` (kept
#: alive in the background, e.g. session heartbeats or a renewal thread: a lapse can never be
#: proven), ``unknown`` (not declared: judged as strictly as ``hidden``).
Expiry = Literal["none", "ttl", "hidden", "unknown"]

# The largest TTL and wait every backend accepts: PostgreSQL's lock_timeout and
# idle_session_timeout are 32-bit counts of ms (etcd takes up to 9e9 s; Redis PX a signed 64-bit
# count, past which every acquire failed).
MAX_MS = 2**31 - 1  # about 24.8 days


class LockFailed(Exception):
    """The server answered: the operation certainly did not take effect."""


class NotAcquired(LockFailed):
    """The lock was held by someone else for the whole wait timeout."""


class NotOwner(LockFailed):
    """Release or renew refused: this client no longer owns the lock (lease gone)."""


@dataclass
class Endpoint:
    """Where a client connects for one server node (the node itself, or its proxy)."""

    name: str
    host: str
    port: int


#: Redlock's allowance for clock drift between nodes, taken off a lease's validity (the
#: reference implementations' and pottery's figures).
CLOCK_DRIFT_FACTOR = 0.01
DRIFT_FLOOR_MS = 2.0


def drift_ms(ttl_ms: float) -> float:
    """The clock-drift allowance subtracted from a lease's validity."""
    return ttl_ms * CLOCK_DRIFT_FACTOR + DRIFT_FLOOR_MS


@dataclass
class Lease:
    key: str
    token: str  # owner identity, unique per acquire
    fence: int | None  # fencing token, increasing per key; None where the lock has none
    validity_ms: float | None = None
    data: Any = None  # backend-private state (e.g. an etcd lease id, a kazoo Lock)


@dataclass(frozen=True)
class ClientParams:
    """What a client is made for, given when it connects (``Backend.connect``): the run's TTL
    and how long an acquire may wait, in ms; None where the workload gives none. A library
    that takes its TTL or its retry budget when it is built needs them before the first
    acquire (``acquire`` still gets both too)."""

    ttl_ms: int | None = None
    wait_ms: int | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a lock declares about itself, typed: the lock model (``expiry``), the fencing
    checker (``fenced``) and the mutex workload (``renew``) read them. Background renewal (a
    heartbeat or a renewal thread the history cannot see) is ``expiry == "hidden"``. A process
    adapter sends the same fields in its connect reply (docs/adapter-protocol.md)."""

    fenced: bool  # Lease.fence is an int increasing per key
    expiry: Expiry  # how a grant ends on its own
    renew: bool | None = None  # LockClient.renew extends a lease; None: not declared
    still_held: bool = False  # the client can say whether it still holds (process adapters)

    @property
    def background_renewal(self) -> bool:
        return self.expiry == "hidden"

    def to_json(self) -> dict[str, Any]:
        return {
            "fenced": self.fenced,
            "expiry": self.expiry,
            "renew": self.renew,
            "still_held": self.still_held,
        }


@dataclass
class ServerNeed:
    """The servers a backend needs: a kind known to the runtime, how many nodes, options."""

    kind: str
    nodes: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    #: Servers in front of these (a connection pooler, Redis Sentinels), started once these are
    #: ready with their nodes as ``options["upstream"]``; clients and ``setup`` connect to the
    #: front's nodes. Its nodes are named after ``front_role`` (pooler1, sentinel1 ...).
    front: ServerNeed | None = None
    front_role: str = "front"


class LockClient(ABC):
    """One logical client's connection to a lock. Lives in one worker process."""

    @abstractmethod
    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        """Take the lock, waiting up to ``wait_ms``; raise NotAcquired when it stayed taken."""

    @abstractmethod
    def release(self, lease: Lease) -> None:
        """Give the lock back; raise NotOwner when the lease was already gone."""

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        """Extend the lease; raise NotOwner when it was already gone."""
        raise NotImplementedError(f"{type(self).__name__} cannot renew")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Drop connections; called when the client stops or is retired."""

    def warm(self) -> None:  # noqa: B027 - optional hook
        """Open the connection now, for a client that opens it at its first call: the harness
        calls it once a client, before the run's clock starts, ignoring its errors (1,000 clients
        connecting at their first acquire, all at once, overflow a server's listen backlog)."""


class Backend(ABC):
    """A lock implementation: its servers, its clients, what it claims."""

    name: ClassVar[str]
    description: ClassVar[str]
    fence: ClassVar[str] = "none"  # what the fence token is, in words, e.g. "INCR counter"
    #: Does ``Lease.fence`` carry a fence token (an int increasing per key)?
    fenced: ClassVar[bool] = False
    #: Does its client do all its waiting in Python (sockets, ``select``, ``time.sleep``,
    #: ``threading``), never in a C library's own blocking call? Then pooled clients may be
    #: greenlets (``harness.run.workers.green_clients``): one thread a worker, no GIL handoffs.
    #: A blocking C call would stall every other client of its worker unseen: False unless known.
    cooperative: ClassVar[bool] = False
    #: Options a user may set with ``--opt NAME=VALUE``: each an ``Option`` (typed default,
    #: meaning, bounds or words), parsed once by ``__init__``. A plain text default is still
    #: accepted (a plug-in written before ``Option``): its value stays the text given.
    options: ClassVar[Mapping[str, Option | str]] = {}
    #: The lock-set workload's data store that this lock's own cluster can hold (``store=lock``
    #: and ``store=auto``), e.g. "redis"; None where the lock's servers hold no such store.
    own_store: ClassVar[str | None] = None
    #: Does ``LockClient.renew`` extend a lease? None: not declared (a renew that raises
    #: ``NotImplementedError`` is recorded as nothing sent).
    renews: ClassVar[bool | None] = None

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        given = dict(opts or {})
        unknown = set(given) - set(self.options)
        if unknown:
            accepted = ", ".join(sorted(self.options)) or "none"
            raise ValueError(
                f"backend {self.name!r} has no option {', '.join(sorted(unknown))}; "
                f"accepted: {accepted}"
            )
        #: Every option's value, parsed (an int, a bool, one of its words...).
        self.values: dict[str, Any] = {}
        #: Every option as text, as the user gave it (a yes/no one as "true"/"false").
        self.opts: dict[str, Any] = {}
        for k, o in self.options.items():
            if not isinstance(o, Option):
                self.values[k] = self.opts[k] = given.get(k, o)
                continue
            value = o.parse(k, given[k]) if k in given else o.default
            self.values[k] = value
            keep = k in given and not isinstance(value, bool)
            self.opts[k] = given[k] if keep else option_text(value)

    def expiry(self) -> Expiry:
        """How this lock's grants end on their own, with the options given (see ``Expiry``).
        A backend that does not say is judged as if it renewed where the history cannot see."""
        return "unknown"

    def capabilities(self) -> Capabilities:
        """What this lock declares, typed (``fenced``, ``expiry()``, ``renews``)."""
        return Capabilities(fenced=self.fenced, expiry=self.expiry(), renew=self.renews)

    def missing(self) -> str | None:
        """What this lock needs on this machine besides its servers that is not here (a
        process adapter's interpreter, its packages), in words; None when nothing is."""
        return None

    def min_down_ms(self, lease_ms: float) -> float:
        """How long a killed server of this lock must stay down before its restart (0: no
        floor). Redlock's delayed restart keeps it down longer than any lock (``lease_ms`` is
        the workload's lock length), so it rejoins without a grant it forgot."""
        return 0.0

    @abstractmethod
    def servers(self) -> ServerNeed:
        """The cluster this backend needs."""

    def setup(self, endpoints: list[Endpoint]) -> None:  # noqa: B027 - optional hook
        """One-time preparation in the harness process after servers are up (tables...)."""

    @abstractmethod
    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        """A fresh client; called inside the worker process."""

    def connect(
        self, endpoints: list[Endpoint], client_id: int, params: ClientParams
    ) -> LockClient:
        """A fresh client for a run whose TTL and wait are ``params``, inside the worker process:
        what the workloads call. Override it to get them at connect; the default is
        ``client(endpoints, client_id)``, so a backend written before it keeps working."""
        return self.client(endpoints, client_id)
