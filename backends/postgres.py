"""PostgreSQL session advisory lock: ``pg_advisory_lock`` on a 64-bit hash of the key.

Algorithm: each client keeps one session. Acquire = ``pg_advisory_lock(id)`` with
``lock_timeout`` = wait_ms (the server gives up with SQLSTATE 55P03: NotAcquired), or
``pg_try_advisory_lock(id)`` once when wait_ms is 0. Release = ``pg_advisory_unlock(id)`` in the
client's session: false (the session does not hold it: another client, or a new session after
the old one died) is NotOwner. Renew = check ``pg_locks`` that this session still holds it.

TTL: a plain advisory lock has none: it lasts as long as the session, whatever ``ttl_ms`` says.
With ``session_ttl=true`` the session's ``idle_session_timeout`` is set to ttl_ms while it holds
a lock, so a holder silent past its TTL loses its session (and with it the lock) server-side.
When the server says it ended the session (terminate, shutdown, idle timeout) the lock is
certainly gone: NotOwner; other connection errors leave the outcome unknown.

Fence: ``nextval`` of a sequence taken in the same session right after the lock is granted.
It is NOT tied to the lock: it increases across holds only because holds do not overlap while
the lock works; a holder whose session died without it noticing has a fence that is smaller
than its successor's, which is exactly what a fencing resource needs to reject it.

Guarantees claimed: mutual exclusion while the holder's session lives (one server: no
replication or failover involved).

Known to break it: the server ending the session behind the client's back (idle timeout with
``session_ttl``, pg_terminate_backend, a proxy or pooler dropping the connection, TCP keepalive
after a partition): the client keeps acting as holder until its next statement fails. A paused
holder without ``session_ttl`` is safe but blocks everyone (liveness). Clock faults do not
matter: no time is involved unless ``session_ttl`` (server-side timer, monotonic).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import psycopg

from .base import Endpoint, Expiry, Lease, LockClient, NotAcquired, NotOwner
from .option_values import Option
from .pg_session import PostgresBackendBase, Session, lock_id, session_ended

SEQUENCE = "lockharness_fence"


class PostgresBackend(PostgresBackendBase):
    name: ClassVar[str] = "postgres"
    description: ClassVar[str] = "PostgreSQL session advisory lock (pg_advisory_lock)"
    fence: ClassVar[str] = "sequence nextval taken right after acquiring (not tied to the lock)"
    fenced = True
    options: ClassVar[Mapping[str, Option | str]] = {
        "session_ttl": Option(False, "a session lasts at most the TTL"),
        **PostgresBackendBase.options,
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.session_ttl: bool = self.values["session_ttl"]

    def expiry(self) -> Expiry:
        # session_ttl: the server's idle-session timer, restarted by each recorded statement
        return "ttl" if self.session_ttl else "none"

    def setup(self, endpoints: list[Endpoint]) -> None:
        s = self._session(endpoints)
        try:
            s.get().execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
        finally:
            s.drop()

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return PostgresLockClient(self._session(endpoints), self.session_ttl)


class PostgresLockClient(LockClient):
    def __init__(self, session: Session, session_ttl: bool) -> None:
        self.session = session
        self.session_ttl = session_ttl

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        lid = lock_id(key)
        try:
            with self.session.bounded(wait_ms / 1000):
                return self._acquire(key, lid, ttl_ms, wait_ms)
        except psycopg.Error:
            self.session.drop()  # the session may hold the lock: let it go with the session
            raise

    def _acquire(self, key: str, lid: int, ttl_ms: int, wait_ms: int) -> Lease:
        conn = self.session.get()
        if wait_ms <= 0:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (lid,)).fetchone()[0]
            if not got:
                raise NotAcquired(f"lock {key!r} is held")
        else:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (str(wait_ms),))
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (lid,))
            except psycopg.errors.LockNotAvailable as e:
                raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms") from e
        if self.session_ttl:
            conn.execute("SELECT set_config('idle_session_timeout', %s, false)", (str(ttl_ms),))
        fence = conn.execute(f"SELECT nextval('{SEQUENCE}')").fetchone()[0]
        token = f"{conn.info.backend_pid}:{uuid.uuid4().hex}"
        return Lease(key, token, fence, None, {"lock_id": lid})

    def release(self, lease: Lease) -> None:
        conn = self.session.get()
        try:
            with self.session.bounded():
                released = conn.execute(
                    "SELECT pg_advisory_unlock(%s)", (lease.data["lock_id"],)
                ).fetchone()[0]
                if self.session_ttl:
                    conn.execute("SELECT set_config('idle_session_timeout', '0', false)")
        except psycopg.Error as e:
            self.session.drop()
            if session_ended(e):
                raise NotOwner(f"the server ended the session holding {lease.key!r}: {e}") from e
            raise
        if not released:
            raise NotOwner(f"this session does not hold {lease.key!r}")

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        lid = lease.data["lock_id"]
        conn = self.session.get()
        try:
            with self.session.bounded():
                if self.session_ttl:
                    conn.execute(
                        "SELECT set_config('idle_session_timeout', %s, false)", (str(ttl_ms),)
                    )
                held = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted AND objsubid = 1"
                    " AND classid::bigint = %s AND objid::bigint = %s)",
                    ((lid >> 32) & 0xFFFFFFFF, lid & 0xFFFFFFFF),
                ).fetchone()[0]
        except psycopg.Error as e:
            self.session.drop()
            if session_ended(e):
                raise NotOwner(f"the server ended the session holding {lease.key!r}: {e}") from e
            raise
        if not held:
            raise NotOwner(f"this session does not hold {lease.key!r}")

    def close(self) -> None:
        self.session.drop()
