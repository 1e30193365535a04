"""PostgreSQL row lock: ``SELECT ... FOR UPDATE`` on the lock's row in an open transaction.

Algorithm (the inventory example: lock the row, act, commit)::

    BEGIN;
    SET LOCAL lock_timeout = wait_ms;
    INSERT INTO lockharness_row_locks (name) VALUES (key) ON CONFLICT DO NOTHING;
    SELECT name FROM lockharness_row_locks WHERE name = key FOR UPDATE;  -- NOWAIT at wait 0
    ...critical section, the transaction idle...
    COMMIT;                                                               -- releases the row

A waiter that runs out of ``lock_timeout`` gets SQLSTATE 55P03 (NotAcquired). The insert makes
the key's row the first time (an insert racing an uncommitted one waits for it, under the same
``lock_timeout``: its inserter is the holder). Renew asks the
server that the transaction is still open. See ``pg_xact`` for the transaction handling shared
with postgres-xact.

TTL: none by default (the lock lasts as long as the transaction); ``xact_ttl=true`` sets
``idle_in_transaction_session_timeout`` = ttl_ms, so the server ends a holder's session once
it has been silent for its TTL.

Fence: ``nextval`` of a sequence in the holding transaction. Not a counter column in the locked
row: an ``UPDATE ... SET fence = fence + 1`` is rolled back when the holder's session dies, and
its successor would be handed the same fence.

Guarantees claimed: mutual exclusion while the holder's transaction lives (row locks are
exclusive among transactions; one server).

Known to break it: as postgres-xact, anything that ends the holder's session while it is not
talking to the server: a server kill and restart (tested), a holder paused past its TTL with
``xact_ttl=true`` (tested), pg_terminate_backend, a dropped connection. A paused holder without
``xact_ttl`` is safe but blocks everyone; clock faults do not matter.
"""

from __future__ import annotations

from typing import ClassVar

import psycopg

from .base import Endpoint, LockClient
from .pg_xact import PostgresXactBackendBase, XactLockClient

TABLE = "lockharness_row_locks"


def _take(conn: psycopg.Connection, key: str, wait_ms: int) -> None:
    # A row inserted by a transaction still open makes this wait for it (a lock wait, under
    # lock_timeout): its inserter holds the lock.
    conn.execute(f"INSERT INTO {TABLE} (name) VALUES (%s) ON CONFLICT DO NOTHING", (key,))
    nowait = " NOWAIT" if wait_ms <= 0 else ""
    row = conn.execute(
        f"SELECT name FROM {TABLE} WHERE name = %s FOR UPDATE{nowait}", (key,)
    ).fetchone()
    if row is None:  # nothing deletes rows: a missing one is a harness fault
        raise RuntimeError(f"lock row {key!r} is missing from {TABLE}")


class PostgresRowBackend(PostgresXactBackendBase):
    name: ClassVar[str] = "postgres-row"
    description: ClassVar[str] = "PostgreSQL row lock (SELECT ... FOR UPDATE), released by COMMIT"
    fence: ClassVar[str] = "sequence nextval in the holding transaction"
    fenced = True

    def prepare(self, conn: psycopg.Connection) -> None:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name text PRIMARY KEY)")

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return XactLockClient(self._session(endpoints), _take, self.xact_ttl)
