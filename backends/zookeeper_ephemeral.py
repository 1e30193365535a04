"""ZooKeeper lock: one plain ephemeral znode per key, ``create -e /locks/<key>``.

Algorithm (the simplest ZooKeeper lock, beside kazoo's recipe in ``zookeeper``): acquire =
create the ephemeral node ``/locks/<key>``; NodeExists means someone holds it: sleep
``poll_ms`` and create again until wait_ms is spent (no sequence numbers, no watch, so no
queue and no fairness: every waiter polls the ensemble). Release = delete the node, after
checking it is ours: its ``ephemeralOwner`` is this client's session and its ``czxid`` the
lease's. Renew = the same check, without the delete. The node lives as long as the client's
session (kazoo keeps it alive with heartbeats); ``ttl_ms`` is not used: the session timeout
(option ``session_timeout_ms``) plays the part of the TTL. No connection-state listener: the
client learns of a lost session only when it next asks the server.

Every call to ZooKeeper is bounded (``op_timeout_ms``); a call that times out or loses its
connection leaves the outcome unknown, and the retired client's session is closed, which
deletes any node it may have made.

Fence: the node's ``czxid`` (the zxid of the create that made it, returned by the create
itself), which grows with every write to the ensemble, so later holds of a key get larger
fences.

Guarantees claimed: mutual exclusion among clients whose sessions are alive (ZooKeeper's
linearizable writes through a quorum; only one create of a path can succeed).

Known to break it: a holder paused (or partitioned away from the quorum) past the session
timeout: its session expires server-side, the node goes with it, a waiter creates it, and the
holder acts until it next talks to ZooKeeper (tested with client-pause; fencing catches the
stale write). Release checks the owner and then deletes (ZooKeeper has no delete conditional
on the owner): a holder frozen between the two calls past its session timeout would delete
its successor's node. Liveness: waiters poll with creates (write load on the leader) and
contend unordered.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState

from .base import MAX_MS, Endpoint, Lease, LockClient, LockFailed, NotAcquired, NotOwner
from .option_values import Option
from .zookeeper import ZooKeeperBase

_MAX_POLLS = 100_000  # a hard bound on top of the wait deadline


class ZooKeeperEphemeralBackend(ZooKeeperBase):
    name: ClassVar[str] = "zookeeper-ephemeral"
    description: ClassVar[str] = (
        "plain ephemeral znode per key (create -e, retry on NodeExists, no watch)"
    )
    fence: ClassVar[str] = "czxid of the lock znode"
    fenced = True
    options: ClassVar[Mapping[str, Option | str]] = {
        **ZooKeeperBase.options,
        "op_timeout_ms": Option(5000, "per-operation timeout", lo=1, hi=MAX_MS),
        "poll_ms": Option(50, "pause between attempts", lo=1, hi=MAX_MS),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.op_s = self.values["op_timeout_ms"] / 1000
        self.poll_s = self.values["poll_ms"] / 1000

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return EphemeralLockClient(self.hosts(endpoints, client_id), self)


class EphemeralLockClient(LockClient):
    def __init__(self, hosts: str, backend: ZooKeeperEphemeralBackend) -> None:
        self.zk = KazooClient(hosts=hosts, timeout=backend.session_s, randomize_hosts=False)
        self.connect_s = backend.connect_s
        self.op_s = backend.op_s
        self.poll_s = backend.poll_s
        self.started = False

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
        path = f"/locks/{key}"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_ms / 1000
        for _ in range(_MAX_POLLS):
            try:
                _, stat = self.zk.create_async(
                    path, token.encode(), ephemeral=True, makepath=True, include_data=True
                ).get(timeout=self.op_s)
            except NodeExistsError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
                continue
            return Lease(key, token, stat.czxid, None, {"path": path, "owner": stat.ephemeralOwner})
        raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms")

    def _session(self) -> Any:
        """This client's session id. kazoo has none while it reconnects (``client_id`` is None
        until it is connected again), and then whether the node is still ours is for the server
        to say: not knowing is an unknown outcome, never a refusal (which once made a release
        during a reconnect leave its node behind, and a waiter's later grant look early). Waits
        up to the op timeout for the reconnect; a session kazoo saw expire is lost, with its
        nodes."""
        end = time.monotonic() + self.op_s
        while (ids := self.zk.client_id) is None:
            if self.zk.state == KazooState.LOST:
                raise NotOwner("this client's session expired: its lock nodes went with it")
            if time.monotonic() >= end:
                raise ConnectionLoss(
                    f"not connected to ZooKeeper after {self.op_s:g} s: whether this session "
                    "still owns the lock is unknown"
                )
            time.sleep(0.01)
        return ids[0]

    def _check_owner(self, lease: Lease) -> Any:
        """The lock node's stat when it is still this lease's node; NotOwner otherwise."""
        session = self._session()
        if session != lease.data["owner"]:
            raise NotOwner(f"this client's session does not own {lease.key!r}")
        stat = self.zk.exists_async(lease.data["path"]).get(timeout=self.op_s)
        if stat is None:
            raise NotOwner(f"lock node of {lease.key!r} is gone")
        if stat.czxid != lease.fence or stat.ephemeralOwner != session:
            raise NotOwner(f"lock node of {lease.key!r} now belongs to another session")
        return stat

    def release(self, lease: Lease) -> None:
        stat = self._check_owner(lease)
        try:
            self.zk.delete_async(lease.data["path"], version=stat.version).get(timeout=self.op_s)
        except (NoNodeError, BadVersionError) as e:
            raise NotOwner(f"lock node of {lease.key!r} went away before the delete") from e

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        self._check_owner(lease)

    def close(self) -> None:
        try:
            self.zk.stop()
        finally:
            self.zk.close()

    @property
    def session(self) -> Any:
        """(session id, password): lets tests expire the session as ZooKeeper's own do."""
        return self.zk.client_id
