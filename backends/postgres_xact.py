"""PostgreSQL transaction advisory lock: ``pg_advisory_xact_lock`` held by an open transaction.

Algorithm (the PostgreSQL manual's own example of a transaction-level lock)::

    BEGIN;
    SELECT pg_advisory_xact_lock(id);   -- lock_timeout = wait_ms; pg_try_advisory_xact_lock at 0
    ...critical section, the transaction idle...
    COMMIT;                             -- releases the lock

``id`` is a 64-bit hash of the key. There is no unlock call: only COMMIT or ROLLBACK (or the
end of the session) release a transaction-level advisory lock. Renew asks the server that the
transaction is still open. See ``pg_xact`` for the transaction handling shared with
postgres-row.

TTL: none by default: the lock lasts as long as the transaction, whatever ``ttl_ms`` says. With
``xact_ttl=true`` the transaction sets ``idle_in_transaction_session_timeout`` = ttl_ms, as many
deployments do to stop forgotten transactions from holding locks: a holder silent past its TTL
loses its session, and the lock, server-side.

Fence: ``nextval`` of a sequence in the holding transaction (not rolled back with it).

Guarantees claimed: mutual exclusion while the holder's transaction lives (one server, no
replication or failover involved).

Known to break it: anything that ends the holder's session while it is not talking to the
server. Tested: a server kill and restart (kill nemesis): the lock dies with the server, a
waiter takes it on the restarted one while the holder, asleep in its critical section, still
acts as holder; its COMMIT then finds the session gone. With ``xact_ttl=true``, a holder paused
past its TTL (client-pause). Also pg_terminate_backend, a proxy or pooler dropping the
connection (reset nemesis). A paused holder without ``xact_ttl`` is safe but blocks everyone
(liveness); clock faults do not matter (no wall-clock time is involved).
"""

from __future__ import annotations

from typing import ClassVar

import psycopg

from .base import Endpoint, LockClient, NotAcquired
from .pg_session import lock_id
from .pg_xact import PostgresXactBackendBase, XactLockClient


def _take(conn: psycopg.Connection, key: str, wait_ms: int) -> None:
    lid = lock_id(key)
    if wait_ms <= 0:
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (lid,)).fetchone()[0]:
            conn.execute("ROLLBACK")
            raise NotAcquired(f"lock {key!r} is held")
        return
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lid,))


class PostgresXactBackend(PostgresXactBackendBase):
    name: ClassVar[str] = "postgres-xact"
    description: ClassVar[str] = (
        "PostgreSQL transaction advisory lock (pg_advisory_xact_lock), released by COMMIT"
    )
    fence: ClassVar[str] = "sequence nextval in the holding transaction"
    fenced = True

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return XactLockClient(self._session(endpoints), _take, self.xact_ttl)
