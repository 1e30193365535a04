"""One PostgreSQL session per lock client (psycopg 3, autocommit), shared by the postgres
backends: connecting, knowing when the server certainly ended the session, key hashing.

With ``failover=true`` the backend needs a primary and a streaming replica (the postgres server
kind promotes the replica when the kill nemesis kills the primary; ``synchronous=true`` makes
commits wait for the replica). Clients find the primary by themselves: one libpq multi-host
connection string over every node, ``target_session_attrs=read-write``.

``synchronous_commit=off`` (default ``on``) runs the server(s) so that a commit is acknowledged
before its WAL is written: a kill loses the last acknowledged commits (and, with an
asynchronous replica, widens what a failover loses). A deliberate, non-durable choice that the
run reports as such.

``pooler=transaction|session`` puts a PgBouncer in that pool mode in front of the one server
(``harness/runtime/pgbouncer.py``); clients and setup connect through it. Through a transaction
pooler psycopg's prepared statements are turned off, as its manual says to: the next statement
may run on another server connection. Not with ``failover``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg

from .base import MAX_MS, Backend, Endpoint, LockFailed, ServerNeed
from .option_values import Option

# SQLSTATEs with which the server says it ended this session (so its locks are gone):
# admin shutdown / pg_terminate_backend, crash shutdown, idle-in-transaction and idle timeouts.
_RECONNECT_PAUSE_S = 0.05
_MAX_CONNECT_ATTEMPTS = 200  # a hard bound on top of find_primary_s

#: ``pooler``: none, or PgBouncer's pool_mode (harness/runtime/pgbouncer.py).
POOLERS = ("none", "transaction", "session")

SESSION_ENDED = frozenset({"57P01", "57P02", "25P03", "57P05"})


def session_ended(e: BaseException) -> bool:
    return isinstance(e, psycopg.Error) and getattr(e, "sqlstate", None) in SESSION_ENDED


def lock_id(key: str) -> int:
    """A stable signed 64-bit id for ``key`` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class Session:
    """A lazily (re)opened connection; a broken one is dropped and reopened on next use.
    Several endpoints: libpq tries them in order and keeps the first that takes writes."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        dbname: str,
        user: str,
        connect_timeout_s: int,
        prepare: bool = True,
    ) -> None:
        self.endpoints = endpoints
        # psycopg prepares a statement run often; a transaction pooler runs the next one on
        # another server connection, which never saw it: such clients turn preparing off.
        self.prepare_threshold: int | None = 5 if prepare else None
        self.dbname = dbname
        self.user = user
        self.connect_timeout_s = connect_timeout_s
        self.conn: psycopg.Connection | None = None
        # Several nodes (failover): keep looking for the primary this long, as a
        # failover-aware client does while a replica is being promoted.
        self.find_primary_s = float(connect_timeout_s) if len(endpoints) > 1 else 0.0
        # No call may outlive this (plus its own wait): see bounded().
        self.call_bound_s = self.find_primary_s + 3.0 * connect_timeout_s
        self._guard = threading.Lock()
        self._armed = False

    def get(self) -> psycopg.Connection:
        """The open connection; LockFailed when none can be opened (nothing took effect)."""
        if self.conn is None or self.conn.closed:
            where: dict[str, str] = {
                "host": ",".join(e.host for e in self.endpoints),
                "port": ",".join(str(e.port) for e in self.endpoints),
            }
            if len(self.endpoints) > 1:
                where["target_session_attrs"] = "read-write"
            deadline = time.monotonic() + self.find_primary_s
            for attempt in range(_MAX_CONNECT_ATTEMPTS):
                try:
                    self.conn = self._connect(where)
                    break
                except psycopg.Error as e:
                    if time.monotonic() >= deadline or attempt == _MAX_CONNECT_ATTEMPTS - 1:
                        raise LockFailed(f"cannot connect to PostgreSQL: {e}") from e
                    time.sleep(_RECONNECT_PAUSE_S)
        return self.conn

    @contextmanager
    def bounded(self, wait_s: float = 0.0) -> Iterator[None]:
        """Calls inside end within ``call_bound_s + wait_s``. A server that stops answering
        (a paused process: its kernel still acknowledges every packet and keepalive, so no TCP
        timeout fires) would block a statement forever; when the bound passes, the session's
        socket is shut down and the statement fails (psycopg.OperationalError, outcome
        unknown), as it would had the connection broken."""
        timer = threading.Timer(self.call_bound_s + wait_s, self._cut)
        timer.daemon = True
        with self._guard:
            self._armed = True
        timer.start()
        try:
            yield
        finally:
            with self._guard:
                self._armed = False
            timer.cancel()

    def _cut(self) -> None:
        with self._guard:
            conn = self.conn
            if not self._armed or conn is None or conn.closed:
                return
            try:
                dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
            except (OSError, psycopg.Error):
                return
            try:
                dup.shutdown(socket.SHUT_RDWR)  # the shared socket, not only this descriptor
            except OSError:
                pass
            finally:
                dup.close()

    def _connect(self, where: dict[str, str]) -> psycopg.Connection:
        return psycopg.connect(
            **where,
            dbname=self.dbname,
            user=self.user,
            autocommit=True,
            prepare_threshold=self.prepare_threshold,
            connect_timeout=self.connect_timeout_s,
            # A dead peer ends a stuck call instead of hanging the worker forever.
            keepalives=1,
            keepalives_idle=2,
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=self.connect_timeout_s * 1000,
        )

    def drop_if_closed_by_server(self) -> None:
        """Drop a connection the server has already closed (its FATAL and EOF are waiting in
        the socket: a killed or shut-down server), so the next call opens a fresh one instead
        of sending a statement that certainly cannot run. No round trip: a non-blocking read."""
        if self.conn is None or self.conn.closed:
            return
        dead = False
        try:
            # The first read takes the server's FATAL message, the next one meets the EOF.
            for _ in range(3):
                self.conn.pgconn.consume_input()
                if self.conn.pgconn.status != psycopg.pq.ConnStatus.OK:
                    dead = True
                    break
        except psycopg.Error:
            dead = True
        if dead:
            self.drop()

    def drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


class PostgresBackendBase(Backend):
    """What the PostgreSQL backends share: one server (or a primary and a replica with
    ``failover``), connection options, sessions."""

    own_store: ClassVar[str | None] = "postgres"  # the lock-set store its cluster holds

    options: ClassVar[Mapping[str, Option | str]] = {
        "dbname": Option("postgres", "database"),
        "user": Option("postgres", "database user"),
        "connect_timeout_s": Option(3, "connect timeout", lo=1, hi=MAX_MS),
        "failover": Option(False, "a primary and a replica"),
        "synchronous": Option(False, "commits wait for the replica"),
        "synchronous_commit": Option("on", "server setting", choices=("on", "off")),
        "fsync": Option(
            "off",
            "server setting (off survives a process kill, not a power cut)",
            choices=("on", "off"),
        ),
        "pooler": Option("none", "clients connect through PgBouncer", choices=POOLERS),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.connect_timeout_s: int = self.values["connect_timeout_s"]
        self.failover: bool = self.values["failover"]
        self.synchronous: bool = self.values["synchronous"]
        if self.synchronous and not self.failover:
            raise ValueError(
                "option synchronous=true needs failover=true (there is no replica to wait for)"
            )
        self.synchronous_commit: str = self.values["synchronous_commit"]
        if self.synchronous and self.synchronous_commit == "off":
            raise ValueError(
                "option synchronous=true needs synchronous_commit=on (with off no commit waits "
                "for the replica)"
            )
        self.pooler: str = self.values["pooler"]
        self.fsync_given = "fsync" in (opts or {})
        if self.pooler != "none" and self.failover:
            raise ValueError(
                f"option pooler={self.pooler} fronts one server: not with failover=true "
                "(PgBouncer would not follow the promoted replica)"
            )

    def servers(self) -> ServerNeed:
        # Only a deliberate choice reaches the server's options (the default is durable).
        local = {"synchronous_commit": "off"} if self.synchronous_commit == "off" else {}
        if self.fsync_given:  # chosen: the kill's power cut (lose_unsynced) may run
            local["fsync"] = self.values["fsync"]
        if self.failover:
            sync = "on" if self.synchronous else "off"
            return ServerNeed("postgres", 2, {"failover": True, "sync": sync, **local})
        if self.pooler != "none":  # clients and setup reach the server through PgBouncer
            pooler = ServerNeed("pgbouncer", 1, {"pool_mode": self.pooler})
            return ServerNeed("postgres", 1, local, front=pooler, front_role="pooler")
        return ServerNeed("postgres", 1, local)

    def _session(self, endpoints: list[Endpoint]) -> Session:
        return Session(
            endpoints,
            self.opts["dbname"],
            self.opts["user"],
            self.connect_timeout_s,
            prepare=self.pooler != "transaction",
        )
