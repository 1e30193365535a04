"""A lock held by an open PostgreSQL transaction, shared by postgres-xact and postgres-row.

Each client keeps one session. Acquire opens a transaction (``BEGIN``), sets its timeouts
locally (``lock_timeout`` = wait_ms, ``statement_timeout``), runs the backend's lock statement,
and takes a fence; the transaction then stays open, idle, while the client holds the lock.
Release = ``COMMIT``. One hold per client at a time (a second acquire would join the first's
transaction, and one COMMIT would end both).

With ``xact_ttl=true`` the transaction sets ``idle_in_transaction_session_timeout`` = ttl_ms:
a holder silent past its TTL has its session ended by the server, and with it the lock.

Fence: ``nextval`` of a sequence in the same transaction. Sequences are not transactional, so a
holder whose transaction died keeps a value its successor can never get again (a counter column
updated in the transaction would be rolled back with it, and handed out twice).

Outcomes: a session the server has already closed (its FATAL or EOF waiting in the socket) is
NotOwner at release and renew: the lock went with it. An error saying the server ended the
session (terminate, shutdown, idle-in-transaction timeout) is NotOwner too; any other error
during COMMIT leaves the outcome unknown.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import psycopg
from psycopg.pq import TransactionStatus

from .base import Endpoint, Expiry, Lease, LockClient, LockFailed, NotAcquired, NotOwner
from .option_values import Option
from .pg_session import PostgresBackendBase, Session, session_ended

SEQUENCE = "lockharness_xact_fence"
#: Bound on any one statement beyond the lock wait: a hung server cannot hold a worker forever.
STATEMENT_MARGIN_MS = 5000

#: Runs the lock statement inside the open transaction: (connection, key, wait_ms) -> None;
#: raises psycopg.errors.LockNotAvailable when the lock stayed taken.
TakeLock = Callable[[psycopg.Connection, str, int], None]


class PostgresXactBackendBase(PostgresBackendBase):
    """One PostgreSQL server; the lock lives as long as the holder's transaction."""

    options: ClassVar[Mapping[str, Option | str]] = {
        "xact_ttl": Option(False, "a transaction lasts at most the TTL"),
        **PostgresBackendBase.options,
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.xact_ttl: bool = self.values["xact_ttl"]

    def expiry(self) -> Expiry:
        # xact_ttl: the server's idle-in-transaction timer, restarted by each recorded statement
        return "ttl" if self.xact_ttl else "none"

    def setup(self, endpoints: list[Endpoint]) -> None:
        s = self._session(endpoints)
        try:
            s.get().execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
            self.prepare(s.get())
        finally:
            s.drop()

    def prepare(self, conn: psycopg.Connection) -> None:  # noqa: B027 - optional hook
        """Tables the lock statement needs (created once, in the harness process)."""


class XactLockClient(LockClient):
    def __init__(self, session: Session, take: TakeLock, xact_ttl: bool) -> None:
        self.session = session
        self.take = take
        self.xact_ttl = xact_ttl
        self.held: str | None = None  # the token of the hold whose transaction is open

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        if self.held is not None:
            raise LockFailed("this client already holds a lock (one transaction per client)")
        self.session.drop_if_closed_by_server()
        conn = self.session.get()
        try:
            conn.execute("BEGIN")
            conn.execute(
                "SELECT set_config('lock_timeout', %s, true),"
                " set_config('statement_timeout', %s, true),"
                " set_config('idle_in_transaction_session_timeout', %s, true)",
                (
                    str(max(wait_ms, 1)),
                    str(max(wait_ms, 0) + STATEMENT_MARGIN_MS),
                    str(ttl_ms if self.xact_ttl else 0),
                ),
            )
            try:
                self.take(conn, key, wait_ms)
            except psycopg.errors.LockNotAvailable as e:
                conn.execute("ROLLBACK")
                raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms") from e
            fence = conn.execute(f"SELECT nextval('{SEQUENCE}')").fetchone()[0]
        except psycopg.Error:
            self.session.drop()  # the transaction may hold the lock: let it go with the session
            raise
        token = f"{conn.info.backend_pid}:{uuid.uuid4().hex}"
        self.held = token
        return Lease(key, token, fence, None)

    def _open_transaction(self, lease: Lease) -> psycopg.Connection:
        """The connection whose open transaction holds ``lease``; NotOwner when it is gone."""
        if self.held != lease.token:
            raise NotOwner(f"no open transaction of this client holds {lease.key!r}")
        self.session.drop_if_closed_by_server()
        conn = self.session.conn
        if conn is None:
            self.held = None
            raise NotOwner(f"the server closed the session holding {lease.key!r}")
        if conn.info.transaction_status != TransactionStatus.INTRANS:
            self.held = None
            self.session.drop()
            raise NotOwner(f"the transaction holding {lease.key!r} is no longer open")
        return conn

    def release(self, lease: Lease) -> None:
        conn = self._open_transaction(lease)
        self.held = None
        try:
            conn.execute("COMMIT")
        except psycopg.Error as e:
            self.session.drop()
            if session_ended(e):
                raise NotOwner(f"the server ended the session holding {lease.key!r}: {e}") from e
            raise

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        """Ask the server that the transaction is alive; any statement also restarts its idle
        timer, which is what keeps an ``xact_ttl`` hold alive."""
        conn = self._open_transaction(lease)
        try:
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
                (str(ttl_ms if self.xact_ttl else 0),),
            )
        except psycopg.Error as e:
            self.held = None
            self.session.drop()
            if session_ended(e):
                raise NotOwner(f"the server ended the session holding {lease.key!r}: {e}") from e
            raise

    def close(self) -> None:
        self.held = None
        self.session.drop()
