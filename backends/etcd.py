"""etcd's own v3 lock service (``/v3/lock/lock``), over the JSON gateway.

Algorithm: grant a lease with the TTL (etcd counts whole seconds: ttl_ms is rounded up, and the
server raises it to its minimum, about 2 s with default timing), then ``/v3/lock/lock`` with the
name ``locks/<key>`` and that lease. The server puts ``locks/<key>/<lease id>`` attached to the
lease and blocks until that key has the lowest create revision under the prefix (etcd's
``concurrency.Mutex``). Renew = one lease keepalive (it restores the granted TTL; etcd cannot
change a lease's TTL, so ``ttl_ms`` of a renew is not used). Release = revoke the lease, which
deletes the lock key atomically with it.

Why release does not call ``/v3/lock/unlock``: unlock is a plain delete of the key that succeeds
on a missing key, so it cannot tell "not owner"; and unlock-then-revoke would report a release
that took effect as "not owner" whenever the lease expired between the two calls. The revoke
alone decides: ok = released, "lease not found" = the lease (and the lock) was already gone.

A lock call that times out client-side may still be granted server-side, so after a timeout the
client revokes its lease: only a confirmed revoke makes it ``NotAcquired``; otherwise the outcome
is unknown.

Each client knows every member and fails over as etcd's own clients do (``etcd_gateway``): a
request that could not be sent goes to the next member at once; after one whose outcome is unknown
the error stands and the next request goes to the next member. A lease lives in the cluster, not in
a member, so a lease granted through one member is used and revoked through any other.

Fence: the create revision of the lock key (read back with a linearizable range after the lock
returns): etcd's global revision, so later holds of a key get larger fences.

Guarantees claimed: mutual exclusion while the holder's lease lives, given a majority of nodes
up and connected, and holders that stop before their TTL runs out.

Known to break it: a holder paused (or partitioned from the cluster) past its TTL keeps acting
as holder after the lease expired and someone else got the lock ("revoked while held"; fencing
catches the stale writes); Jepsen found etcd 3.4.3 locks unsafe under process pauses and
partitions for this reason. Clock faults do not apply: etcd (Go) does not read time via libc.
"""

from __future__ import annotations

import http.client
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

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
from .etcd_gateway import NOT_FOUND, EtcdError, Gateway, b64
from .option_values import Option

# Errors after which the outcome of a request is unknown.
_TRANSPORT = (OSError, http.client.HTTPException)
_MIN_WAIT_S = 0.05  # a zero wait still gives an uncontended lock one round trip


class EtcdBackend(Backend):
    own_store: ClassVar[str | None] = "etcd"  # the lock-set store its cluster holds
    name: ClassVar[str] = "etcd"
    description: ClassVar[str] = "etcd v3 lock API (lease + /v3/lock/lock) over the JSON gateway"
    fence: ClassVar[str] = "create revision of the lock key"
    fenced = True
    options: ClassVar[Mapping[str, Option | str]] = {
        "nodes": Option(3, "etcd members", lo=1, hi=MAX_MS),
        "timeout_ms": Option(2000, "per-request timeout", lo=1, hi=MAX_MS),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.nodes: int = self.values["nodes"]
        self.timeout_s = self.values["timeout_ms"] / 1000

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        return ServerNeed("etcd", self.nodes)

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        # every member, starting with one of its own so that clients spread over the members
        first = client_id % len(endpoints)
        ring = [(e.host, e.port) for e in endpoints[first:] + endpoints[:first]]
        return EtcdLockClient(ring, self.timeout_s)


class EtcdLockClient(LockClient):
    def __init__(self, endpoints: list[tuple[str, int]], timeout_s: float) -> None:
        """A client of the members at ``endpoints``: it talks to the first and fails over to
        the others in turn (``etcd_gateway.Gateway``)."""
        (host, port), *fallbacks = endpoints
        self.gw = Gateway(host, port, fallbacks=fallbacks)
        self.timeout_s = timeout_s

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        try:
            grant = self.gw.call(
                "/v3/lease/grant", {"TTL": max(1, math.ceil(ttl_ms / 1000))}, self.timeout_s
            )
        except (EtcdError, *_TRANSPORT) as e:
            # A lease alone holds no lock: whatever happened, nothing was acquired.
            raise LockFailed(f"lease grant failed: {e}") from e
        lease_id = grant["ID"]
        ttl_s = int(grant.get("TTL", 0))
        started = time.monotonic()
        try:
            got = self.gw.call(
                "/v3/lock/lock",
                {"name": b64(f"locks/{key}"), "lease": lease_id},
                max(wait_ms / 1000, _MIN_WAIT_S),
                waits=True,  # it times out whenever the lock stays held: no member's fault
            )
            lock_key = got["key"]
            fence = self._create_revision(lock_key)
        except BaseException as e:
            if not self._revoke_confirmed(lease_id):
                raise  # maybe granted and still held: unknown
            if isinstance(e, TimeoutError):
                raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms") from e
            if isinstance(e, EtcdError | _LockKeyGone):
                raise LockFailed(f"lock {key!r} not acquired: {e}") from e
            raise
        validity = ttl_s * 1000 - (time.monotonic() - started) * 1000
        return Lease(key, str(lease_id), fence, validity, {"lease": lease_id, "lock_key": lock_key})

    def release(self, lease: Lease) -> None:
        try:
            self.gw.call("/v3/lease/revoke", {"ID": lease.data["lease"]}, self.timeout_s)
        except EtcdError as e:
            if e.code == NOT_FOUND:
                raise NotOwner(f"lease of {lease.key!r} already gone: {e.message}") from e
            raise

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        got = self.gw.call("/v3/lease/keepalive", {"ID": lease.data["lease"]}, self.timeout_s)
        ttl_s = int(got.get("TTL", 0))
        if ttl_s <= 0:  # keepalive of an unknown lease answers without a TTL
            raise NotOwner(f"lease of {lease.key!r} already gone")
        lease.validity_ms = ttl_s * 1000

    def close(self) -> None:
        self.gw.reset()

    # -- helpers ---------------------------------------------------------------------------

    def _create_revision(self, lock_key: str) -> int:
        got = self.gw.call("/v3/kv/range", {"key": lock_key}, self.timeout_s)
        kvs: list[dict[str, Any]] = got.get("kvs") or []
        if not kvs:
            raise _LockKeyGone("the lock key vanished before its revision was read")
        return int(kvs[0]["create_revision"])

    def _revoke_confirmed(self, lease_id: str) -> bool:
        """Revoke after a failed lock call; True when the lease is certainly gone."""
        try:
            self.gw.call("/v3/lease/revoke", {"ID": lease_id}, self.timeout_s)
            return True
        except EtcdError as e:
            return e.code == NOT_FOUND
        except _TRANSPORT:
            return False


class _LockKeyGone(Exception):
    pass
