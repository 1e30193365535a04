"""A ShedLock-style lease table in PostgreSQL, timed by the database clock.

Algorithm: one row per lock name (``name`` PRIMARY KEY, ``lock_until``, ``locked_at``,
``locked_by``, ``fence``). Acquire = one atomic statement::

    INSERT ... VALUES (name, now() + ttl, now(), token, nextval(seq))
    ON CONFLICT (name) DO UPDATE SET ... WHERE leases.lock_until <= now() RETURNING fence

which inserts a new row or takes over an expired one; no row returned = held by someone else
(polled every 20 ms until wait_ms). Release = ``DELETE ... WHERE name AND locked_by = token AND
lock_until > now()``, renew = ``UPDATE ... SET lock_until = now() + ttl`` with the same
condition; no row = NotOwner (expired, or taken over).

Fence: ``nextval`` of a sequence, written in the same statement that takes the lock, so the
winning statement's fence is the one stored with the row. A waiting statement that computed a
smaller value cannot win later: it re-checks ``lock_until <= now()`` against the newer row, and
``now()`` is its own (earlier) transaction start.

Guarantees claimed: mutual exclusion while every holder finishes within its TTL by the database
server's clock (one server, no replication).

Known to break it: a holder paused past its TTL ("revoked while held"; fencing catches the
stale writes); a jump of the database server's wall clock (``now()`` is wall-clock time: the
clock nemesis moves it, and a forward jump expires every lease at once). With ``failover=true``
(a primary and an asynchronous streaming replica, promoted when the kill nemesis kills the
primary) the lease rows written after the last WAL the replica received are gone on the new
primary: a second client takes a lease the first still holds, and the first one's release is
refused long before its TTL. ``synchronous=true`` keeps every acknowledged lease across the
failover, but commits wait while no replica streams, and a lease whose commit waited longer than
its TTL is granted already expired (its holder's ``now()`` was the statement's start).
"""

from __future__ import annotations

import time
import uuid
from typing import ClassVar

import psycopg

from .base import Endpoint, Expiry, Lease, LockClient, NotAcquired, NotOwner
from .pg_session import PostgresBackendBase, Session

TABLE = "lockharness_leases"
SEQUENCE = "lockharness_lease_fence"
_POLL_S = 0.02
_MAX_POLLS = 100_000  # a hard bound on top of the wait deadline

_ACQUIRE = f"""
INSERT INTO {TABLE} AS l (name, lock_until, locked_at, locked_by, fence)
VALUES (%(name)s, now() + %(ttl)s * interval '1 millisecond', now(), %(token)s,
        nextval('{SEQUENCE}'))
ON CONFLICT (name) DO UPDATE
   SET lock_until = EXCLUDED.lock_until, locked_at = EXCLUDED.locked_at,
       locked_by = EXCLUDED.locked_by, fence = EXCLUDED.fence
 WHERE l.lock_until <= now()
RETURNING fence, extract(epoch FROM lock_until - now()) * 1000
"""
_RELEASE = f"DELETE FROM {TABLE} WHERE name = %s AND locked_by = %s AND lock_until > now()"
_RENEW = f"""
UPDATE {TABLE} SET lock_until = now() + %s * interval '1 millisecond'
 WHERE name = %s AND locked_by = %s AND lock_until > now()
"""


class PostgresLeaseBackend(PostgresBackendBase):
    name: ClassVar[str] = "postgres-lease"
    description: ClassVar[str] = "ShedLock-style lease table in PostgreSQL (database clock)"
    fence: ClassVar[str] = "sequence nextval stored with the winning row"
    fenced = True

    def expiry(self) -> Expiry:
        return "ttl"

    def setup(self, endpoints: list[Endpoint]) -> None:
        s = self._session(endpoints)
        try:
            conn = s.get()
            conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (name text PRIMARY KEY,"
                " lock_until timestamptz NOT NULL, locked_at timestamptz NOT NULL,"
                " locked_by text NOT NULL, fence bigint NOT NULL)"
            )
        finally:
            s.drop()

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return PostgresLeaseClient(self._session(endpoints))


class PostgresLeaseClient(LockClient):
    def __init__(self, session: Session) -> None:
        self.session = session

    def _run(self, sql: str, params: object) -> psycopg.Cursor:
        # The lease lives in a table, not in the session: a session the server closed (a
        # killed primary) is replaced before use, so the statement reaches the new primary.
        self.session.drop_if_closed_by_server()
        try:
            with self.session.bounded():
                return self.session.get().execute(sql, params)
        except psycopg.Error:
            self.session.drop()  # outcome unknown: start clean next time
            raise

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        token = uuid.uuid4().hex
        params = {"name": key, "ttl": ttl_ms, "token": token}
        deadline = time.monotonic() + wait_ms / 1000
        for _ in range(_MAX_POLLS):
            row = self._run(_ACQUIRE, params).fetchone()
            if row is not None:
                return Lease(key, token, row[0], float(row[1]))
            if time.monotonic() >= deadline:
                break
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms")

    def release(self, lease: Lease) -> None:
        if self._run(_RELEASE, (lease.key, lease.token)).rowcount != 1:
            raise NotOwner(f"lease on {lease.key!r} expired or was taken over")

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        if self._run(_RENEW, (ttl_ms, lease.key, lease.token)).rowcount != 1:
            raise NotOwner(f"lease on {lease.key!r} expired or was taken over")
        lease.validity_ms = float(ttl_ms)

    def close(self) -> None:
        self.session.drop()
