"""One PostgreSQL session per lock client (psycopg 3, autocommit), shared by the postgres
backends: connecting, knowing when the server certainly ended the session, key hashing."""

from __future__ import annotations

import hashlib
from typing import ClassVar

import psycopg

from .base import Backend, Endpoint, LockFailed, ServerNeed
from .option_values import positive_int

# SQLSTATEs with which the server says it ended this session (so its locks are gone):
# admin shutdown / pg_terminate_backend, crash shutdown, idle-in-transaction and idle timeouts.
SESSION_ENDED = frozenset({"57P01", "57P02", "25P03", "57P05"})


def session_ended(e: BaseException) -> bool:
    return isinstance(e, psycopg.Error) and getattr(e, "sqlstate", None) in SESSION_ENDED


def lock_id(key: str) -> int:
    """A stable signed 64-bit id for ``key`` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


class Session:
    """A lazily (re)opened connection; a broken one is dropped and reopened on next use."""

    def __init__(self, endpoint: Endpoint, dbname: str, user: str, connect_timeout_s: int):
        self.endpoint = endpoint
        self.dbname = dbname
        self.user = user
        self.connect_timeout_s = connect_timeout_s
        self.conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        """The open connection; LockFailed when none can be opened (nothing took effect)."""
        if self.conn is None or self.conn.closed:
            try:
                self.conn = psycopg.connect(
                    host=self.endpoint.host,
                    port=self.endpoint.port,
                    dbname=self.dbname,
                    user=self.user,
                    autocommit=True,
                    connect_timeout=self.connect_timeout_s,
                    # A dead peer ends a stuck call instead of hanging the worker forever.
                    keepalives=1,
                    keepalives_idle=2,
                    keepalives_interval=1,
                    keepalives_count=3,
                    tcp_user_timeout=self.connect_timeout_s * 1000,
                )
            except psycopg.Error as e:
                raise LockFailed(f"cannot connect to PostgreSQL: {e}") from e
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


class PostgresBackendBase(Backend):
    """What the PostgreSQL backends share: one server, connection options, sessions."""

    options: ClassVar[dict[str, str]] = {
        "dbname": "postgres",
        "user": "postgres",
        "connect_timeout_s": "3",
    }

    def __init__(self, opts: dict[str, str] | None = None) -> None:
        super().__init__(opts)
        self.connect_timeout_s = positive_int(self.opts, "connect_timeout_s")

    def servers(self) -> ServerNeed:
        return ServerNeed("postgres", 1)

    def _session(self, endpoints: list[Endpoint]) -> Session:
        return Session(endpoints[0], self.opts["dbname"], self.opts["user"], self.connect_timeout_s)
