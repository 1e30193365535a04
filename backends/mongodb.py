"""MongoDB lease documents: ``{_id: key, owner, expiresAt}`` in one collection, via pymongo.

Algorithm: acquire = one atomic upsert whose filter matches only an expired lock document::

    update_one({_id: key, $expr: {$lte: ["$expiresAt", "$$NOW"]}},
               [{$set: {owner: token, expiresAt: $$NOW + ttl}}], upsert=True)

A missing document is inserted (unique ``_id``); an expired one is taken over; a live one makes
the upsert's insert collide on ``_id`` (DuplicateKeyError): held, polled every 20 ms until
wait_ms. Release = ``delete_one({_id, owner: token, not expired})``, renew = the same filter
with ``$set expiresAt``; no match = NotOwner. A TTL index on ``expiresAt`` removes stale
documents (cleanup only: the filters, not the TTL monitor, decide ownership). Time is the
server's clock (``$$NOW``).

Fence: ``findOneAndUpdate`` ``$inc`` on a counter document per key, taken right after the lock
is won (so it grows across holds as long as holds do not overlap); stored in the lock document.

Options: ``w=majority|1`` (write concern of every lock write), ``uri=`` to use an external
server or replica set instead of starting mongod, ``nodes`` (replica set size when started).

Guarantees claimed: mutual exclusion while holders finish within their TTL by the primary's
clock, and with ``w=majority`` across primary failover.

Known to break it: a holder paused past its TTL ("revoked while held"; fencing catches it);
a jump of the primary's wall clock (``$$NOW``); with ``w=1`` a failover can lose an
acknowledged lock write (rollback), so two clients can hold at once.
"""

from __future__ import annotations

import time
import uuid
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
from .option_values import Option

DATABASE = "lockharness"
LOCKS = "locks"
FENCES = "fences"
REPLICA_SET = "lockharness"  # the name the mongodb server kind gives its set
_POLL_S = 0.02
_MAX_POLLS = 100_000


def _not_expired() -> dict[str, Any]:
    return {"$expr": {"$gt": ["$expiresAt", "$$NOW"]}}


class MongoBackend(Backend):
    name: ClassVar[str] = "mongodb"
    description: ClassVar[str] = "MongoDB lease documents (conditional upsert, $$NOW expiry)"
    fence: ClassVar[str] = "$inc counter per key, taken right after winning"
    fenced = True
    options: ClassVar[Mapping[str, Option | str]] = {
        "nodes": Option(3, "replica set members", lo=1, hi=MAX_MS),
        "w": Option("majority", "write concern", choices=("majority", "1")),
        "uri": Option("", "an external server instead of started ones"),
        "timeout_ms": Option(3000, "per-operation timeout", lo=1, hi=MAX_MS),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.nodes: int = self.values["nodes"]
        self.w: str = self.values["w"]
        self.timeout_ms: int = self.values["timeout_ms"]
        self.uri = self.values["uri"].strip()
        if self.uri and not self.uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                f"option uri={self.uri!r} is not accepted: give mongodb://HOST:PORT/..."
            )

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        # With an external server nothing needs starting (nodes=0).
        return ServerNeed("mongodb", 0 if self.uri else self.nodes, {"uri": self.uri, "w": self.w})

    def _client(self, endpoints: list[Endpoint]) -> Any:
        from pymongo import MongoClient
        from pymongo.write_concern import WriteConcern

        kw: dict[str, Any] = {
            "serverSelectionTimeoutMS": self.timeout_ms,
            "connectTimeoutMS": self.timeout_ms,
            "socketTimeoutMS": self.timeout_ms,
            "retryWrites": False,  # a retried write could hide an unknown outcome
        }
        if self.uri:
            client = MongoClient(self.uri, **kw)
        else:
            hosts = [f"{e.host}:{e.port}" for e in endpoints]
            client = MongoClient(hosts, replicaSet=REPLICA_SET, **kw)
        w: int | str = 1 if self.w == "1" else "majority"
        return client, client.get_database(DATABASE, write_concern=WriteConcern(w=w))

    def setup(self, endpoints: list[Endpoint]) -> None:
        client, db = self._client(endpoints)
        try:
            db[LOCKS].create_index("expiresAt", expireAfterSeconds=0)
        finally:
            client.close()

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        client, db = self._client(endpoints)
        return MongoLockClient(client, db)


class MongoLockClient(LockClient):
    def __init__(self, client: Any, db: Any) -> None:
        self.client = client
        self.locks = db[LOCKS]
        self.fences = db[FENCES]

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        from pymongo.errors import DuplicateKeyError, ServerSelectionTimeoutError

        token = uuid.uuid4().hex
        take = [{"$set": {"owner": token, "expiresAt": {"$add": ["$$NOW", ttl_ms]}}}]
        expired = {"_id": key, "$expr": {"$lte": ["$expiresAt", "$$NOW"]}}
        deadline = time.monotonic() + wait_ms / 1000
        for _ in range(_MAX_POLLS):
            try:
                res = self.locks.update_one(expired, take, upsert=True)
            except DuplicateKeyError:
                res = None  # a live lock document exists
            except ServerSelectionTimeoutError as e:
                # No server was reached, so nothing was sent: certainly not acquired.
                raise LockFailed(f"no MongoDB server reachable: {e}") from e
            if res is not None and (res.upserted_id is not None or res.modified_count == 1):
                fence = self.fences.find_one_and_update(
                    {"_id": key}, {"$inc": {"n": 1}}, upsert=True, return_document=True
                )["n"]
                self.locks.update_one({"_id": key, "owner": token}, {"$set": {"fence": fence}})
                return Lease(key, token, fence, float(ttl_ms))
            if time.monotonic() >= deadline:
                break
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms")

    def release(self, lease: Lease) -> None:
        res = self.locks.delete_one({"_id": lease.key, "owner": lease.token, **_not_expired()})
        if res.deleted_count != 1:
            raise NotOwner(f"lock document of {lease.key!r} expired or was taken over")

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        res = self.locks.update_one(
            {"_id": lease.key, "owner": lease.token, **_not_expired()},
            [{"$set": {"expiresAt": {"$add": ["$$NOW", ttl_ms]}}}],
        )
        if res.matched_count != 1:
            raise NotOwner(f"lock document of {lease.key!r} expired or was taken over")
        lease.validity_ms = float(ttl_ms)

    def close(self) -> None:
        self.client.close()
