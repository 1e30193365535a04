"""The set as a PostgreSQL row (table ``lockharness_sets``: name, elements jsonb, fence).

- fenced: ``UPDATE ... WHERE fence <= token``: one statement, and a concurrent writer's update
  is re-checked against the row it committed (READ COMMITTED re-evaluates the WHERE clause on the
  newest row version), so an older token can never land after a newer one;
- guarded: the UPDATE runs only if the lease row of ``backends.postgres_lease`` still names this
  writer and has not expired by the database clock; the lease row is locked ``FOR SHARE`` in the
  same statement, so a takeover cannot commit between the check and the write.

Every statement has a server-side ``statement_timeout`` and the session's connect timeout.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from backends.base import Lease
from backends.pg_session import Session
from backends.postgres_lease import TABLE as LEASES

from .base import NotHeld, SetStore, StaleWrite

TABLE = "lockharness_sets"

_READ = f"SELECT elements FROM {TABLE} WHERE name = %s"
_PLAIN = f"UPDATE {TABLE} SET elements = %s WHERE name = %s"
_FENCED = f"UPDATE {TABLE} SET elements = %s, fence = %s WHERE name = %s AND fence <= %s"
_GUARDED = f"""
UPDATE {TABLE} SET elements = %s
 WHERE name = %s
   AND EXISTS (SELECT 1 FROM {LEASES}
                WHERE name = %s AND locked_by = %s AND lock_until > now() FOR SHARE)
"""


class _TimedSession(Session):
    """A session whose every statement times out on the server too."""

    def __init__(self, endpoints: Any, timeout_ms: int) -> None:
        super().__init__(endpoints, "postgres", "postgres", max(1, math.ceil(timeout_ms / 1000)))
        self.timeout_ms = timeout_ms

    def _connect(self, where: dict[str, str]) -> psycopg.Connection:
        conn = super()._connect(where)
        conn.execute(f"SET statement_timeout = {int(self.timeout_ms)}")
        return conn


class PostgresStore(SetStore):
    name = "postgres"
    guards = frozenset({"postgres-lease"})

    def _connect(self) -> _TimedSession:
        return _TimedSession(self.endpoints, self.timeout_ms)

    def _close(self, conn: _TimedSession) -> None:
        conn.drop()

    def _run(self, sql: str, params: tuple[Any, ...]) -> psycopg.Cursor:
        s: _TimedSession = self.conn()
        s.drop_if_closed_by_server()
        try:
            return s.get().execute(sql, params)
        except psycopg.Error:
            s.drop()  # outcome unknown: start clean next time
            raise

    def setup(self, keys: list[str]) -> None:
        s = _TimedSession(self.endpoints, self.timeout_ms)
        try:
            conn = s.get()
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (name text PRIMARY KEY,"
                " elements jsonb NOT NULL, fence bigint NOT NULL)"
            )
            if self.mode == "guarded":  # the lease table may not exist before the lock's setup
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {LEASES} (name text PRIMARY KEY,"
                    " lock_until timestamptz NOT NULL, locked_at timestamptz NOT NULL,"
                    " locked_by text NOT NULL, fence bigint NOT NULL)"
                )
            for k in keys:
                conn.execute(
                    f"INSERT INTO {TABLE} VALUES (%s, '[]', -1)"
                    " ON CONFLICT (name) DO UPDATE SET elements = '[]', fence = -1",
                    (k,),
                )
        finally:
            s.drop()

    def read(self, key: str) -> list[int]:
        row = self._run(_READ, (key,)).fetchone()
        return list(row[0]) if row else []

    def write(self, key: str, elements: list[int], fence: int | None, lease: Lease | None) -> None:
        value = Jsonb(elements)
        if self.mode == "plain":
            n = self._run(_PLAIN, (value, key)).rowcount
        elif self.mode == "fenced":
            f = self._check_fence(fence)
            if self._run(_FENCED, (value, f, key, f)).rowcount != 1:
                raise StaleWrite(f"stale fence token {f}: the store accepted a newer one")
            return
        else:
            held = self._lease(lease)
            if self._run(_GUARDED, (value, key, held.key, held.token)).rowcount != 1:
                raise NotHeld(f"lease on {held.key!r} expired or was taken over")
            return
        if n != 1:
            raise ValueError(f"key {key!r} was not set up in the PostgreSQL store")
