"""ZooKeeper lock: kazoo's ``Lock`` recipe (ephemeral sequential znodes) at ``/locks/<key>``.

Algorithm: create an ephemeral sequential znode under ``/locks/<key>``; the lowest sequence
number holds the lock, every other contender watches its predecessor. The lock lives as long as
the client's ZooKeeper session (kazoo keeps it alive with heartbeats); ``ttl_ms`` is not used:
the session timeout (option ``session_timeout_ms``) plays the part of the TTL.

Fence: the lock znode's sequence number, parsed from its name. ZooKeeper takes it from the
parent's child-version counter, which only grows, so later holds of a key get larger fences.

Connection state: the client listens to kazoo's states. SUSPENDED (connection lost, session may
still live) or LOST (session expired) mark the hold as lost: renew then raises NotOwner, so the
holder stops acting as one. Release after LOST raises NotOwner (the ephemeral node died with the
session); after a mere SUSPENDED the release deletes the node if it is still there (ok) and
raises NotOwner only if it is gone, so a hold whose session survived is not misreported.
Renew on a healthy connection checks that the znode still exists.

``ignore_connection_state=true`` is the naive client many applications are: it trusts kazoo's
local ``is_acquired`` flag, renews without asking the server, and releases with
``Lock.release()``, which silently succeeds when the node is already gone. It shows why the
listener matters: after a session expiry it keeps "holding" while someone else has the lock.

Guarantees claimed: mutual exclusion among clients whose sessions are alive (ZooKeeper's
linearizable writes through a quorum); a holder learns of loss when its connection drops.

Known to break it: a holder paused or partitioned past the session timeout keeps acting until it
next talks to ZooKeeper (the session expired server-side, another client got the lock): fencing
is needed. With ``ignore_connection_state=true`` even a connected client acts on a lost lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, LockTimeout, NoNodeError
from kazoo.handlers.threading import AsyncResult, SequentialThreadingHandler
from kazoo.protocol.states import KazooState
from kazoo.recipe.lock import Lock

from .base import (
    MAX_MS,
    Backend,
    Endpoint,
    Expiry,
    Lease,
    LockClient,
    LockFailed,
    NotAcquired,
    NotOwner,
    ServerNeed,
)
from .option_values import Option

_MIN_WAIT_S = 0.05


class _BoundedResult(AsyncResult):
    """kazoo's synchronous calls (``exists``, ``get_children`` ... and those inside its Lock
    recipe) wait on ``.get()`` without a timeout, forever if an answer never comes; here every
    wait is bounded, and a call that outlives it raises KazooTimeoutError (outcome unknown)."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return super().get(block, self._handler.call_timeout_s if timeout is None else timeout)


class _BoundedHandler(SequentialThreadingHandler):
    def __init__(self, call_timeout_s: float) -> None:
        super().__init__()
        self.call_timeout_s = call_timeout_s

    def async_result(self) -> AsyncResult:
        return _BoundedResult(self)


class ZooKeeperBase(Backend):
    """What every ZooKeeper lock shares: the ensemble's size, the session and connect timeouts,
    and the host list each client fails over along."""

    own_store: ClassVar[str | None] = "zookeeper"  # the lock-set store its cluster holds

    options: ClassVar[Mapping[str, Option | str]] = {
        "nodes": Option(3, "ensemble members", lo=1, hi=MAX_MS),
        "session_timeout_ms": Option(3000, "session (the lock's lease)", lo=1, hi=MAX_MS),
        "connect_timeout_ms": Option(5000, "connect timeout", lo=1, hi=MAX_MS),
    }

    def expiry(self) -> Expiry:
        # the session (the lock's lease) is kept alive by kazoo's heartbeats, unrecorded
        return "hidden"

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.nodes: int = self.values["nodes"]
        self.session_s = self.values["session_timeout_ms"] / 1000
        self.connect_s = self.values["connect_timeout_ms"] / 1000

    def servers(self) -> ServerNeed:
        return ServerNeed("zookeeper", self.nodes)

    @staticmethod
    def hosts(endpoints: list[Endpoint], client_id: int) -> str:
        """Each client starts at a different node and fails over in order."""
        i = client_id % len(endpoints)
        return ",".join(f"{e.host}:{e.port}" for e in endpoints[i:] + endpoints[:i])


class ZooKeeperBackend(ZooKeeperBase):
    name: ClassVar[str] = "zookeeper"
    description: ClassVar[str] = "kazoo Lock recipe: ephemeral sequential znodes in ZooKeeper"
    fence: ClassVar[str] = "sequence number of the lock znode"
    fenced = True
    options: ClassVar[Mapping[str, Option | str]] = {
        **ZooKeeperBase.options,
        "ignore_connection_state": Option(False, "act after the session is suspended"),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.ignore_state: bool = self.values["ignore_connection_state"]

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        hosts = self.hosts(endpoints, client_id)
        return ZooKeeperLockClient(hosts, self.session_s, self.connect_s, self.ignore_state)


@dataclass
class _Hold:
    lock: Lock
    path: str  # the lock znode
    suspended: bool = False  # the connection dropped while held (session may live)
    expired: bool = False  # the session was lost: the ephemeral node is gone


class ZooKeeperLockClient(LockClient):
    def __init__(self, hosts: str, session_s: float, connect_s: float, ignore_state: bool) -> None:
        # kazoo itself fails a pending call with ConnectionLoss once the connection is deemed
        # dead (2/3 of the session timeout without an answer); the bound is only a backstop.
        self.zk = KazooClient(
            hosts=hosts,
            timeout=session_s,
            randomize_hosts=False,
            handler=_BoundedHandler(session_s + connect_s),
        )
        self.connect_s = connect_s
        self.ignore_state = ignore_state
        self.started = False
        self.holds: dict[str, _Hold] = {}  # by lease token
        self.epoch = 0  # counts connection drops, to catch one during an acquire
        if not ignore_state:
            self.zk.add_listener(self._on_state)

    def _on_state(self, state: str) -> None:
        # Runs on kazoo's thread; it only flips flags.
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self.epoch += 1
            for hold in list(self.holds.values()):
                hold.suspended = True
                hold.expired = hold.expired or state == KazooState.LOST

    def _connect(self) -> None:
        if self.started:
            return
        try:
            self.zk.start(timeout=self.connect_s)
        except Exception as e:
            self.zk.stop()
            raise LockFailed(f"cannot connect to ZooKeeper: {e}") from e
        self.started = True

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        self._connect()
        token = uuid.uuid4().hex
        lock = self.zk.Lock(f"/locks/{key}", identifier=token)
        epoch = self.epoch
        try:
            got = lock.acquire(blocking=True, timeout=max(wait_ms / 1000, _MIN_WAIT_S))
        except LockTimeout as e:
            self._check_withdrawn(lock)
            raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms") from e
        except KazooException as e:
            self._check_withdrawn(lock)
            raise LockFailed(f"lock {key!r} not acquired: {e!r}") from e
        if not got:
            self._check_withdrawn(lock)
            raise LockFailed(f"lock {key!r} not acquired: retries ran out")
        node: str = lock.node
        hold = _Hold(lock, f"{lock.path}/{node}")
        hold.suspended = self.epoch != epoch  # a drop during the acquire: trust nothing
        self.holds[token] = hold
        return Lease(key, token, int(node[-10:]), None, hold)

    def _check_withdrawn(self, lock: Lock) -> None:
        """After a failed acquire kazoo deletes its node on a best-effort basis; make sure it is
        gone, otherwise the node may yet become the holder: the outcome is unknown."""
        node = lock.node or lock._find_node()  # a create whose answer was lost has no name yet
        if node is not None and self.zk.exists(f"{lock.path}/{node}") is not None:
            raise RuntimeError(f"contender node {node} of {lock.path} is still there")

    def release(self, lease: Lease) -> None:
        hold: _Hold = lease.data
        self.holds.pop(lease.token, None)
        if self.ignore_state:
            hold.lock.release()  # returns quietly when the node is already gone
            return
        if hold.expired:
            hold.lock.is_acquired = False
            raise NotOwner(f"session expired while holding {lease.key!r}: its node is gone")
        try:
            self.zk.delete(hold.path)
        except NoNodeError as e:
            raise NotOwner(f"lock node of {lease.key!r} is already gone") from e
        finally:
            hold.lock.is_acquired = False

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        hold: _Hold = lease.data
        if self.ignore_state:
            if not hold.lock.is_acquired:
                raise NotOwner(f"lock {lease.key!r} was released")
            return
        if hold.suspended or hold.expired:
            raise NotOwner(f"connection to ZooKeeper dropped while holding {lease.key!r}")
        if self.zk.exists(hold.path) is None:
            raise NotOwner(f"lock node of {lease.key!r} is gone")

    def close(self) -> None:
        try:
            self.zk.stop()
        finally:
            self.zk.close()

    @property
    def session(self) -> Any:
        """(session id, password): lets tests expire the session the way ZooKeeper's own
        tests do, by closing a second connection that shares it."""
        return self.zk.client_id
