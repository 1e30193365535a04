"""ShedLock's lease table on MariaDB (or MySQL), timed by the database clock.

Algorithm (ShedLock's JDBC provider with ``usingDbTime()``): one row per lock name in ShedLock's
table (``name`` PRIMARY KEY, ``lock_until``, ``locked_at``, ``locked_by``) plus a ``fence``
column. Acquire = insert, or on a duplicate key a conditional update, each one autocommitted
statement::

    INSERT INTO shedlock (name, lock_until, locked_at, locked_by, fence)
         VALUES (key, UTC_TIMESTAMP(3) + ttl, UTC_TIMESTAMP(3), token, 1)
    -- duplicate key:
    UPDATE shedlock SET lock_until = UTC_TIMESTAMP(3) + ttl, locked_at = UTC_TIMESTAMP(3),
           locked_by = token, fence = LAST_INSERT_ID(fence + 1)
     WHERE name = key AND lock_until <= UTC_TIMESTAMP(3)

One row changed = granted; none = held by someone else (polled every ``poll_ms`` until
wait_ms). Release = ``UPDATE ... SET lock_until = UTC_TIMESTAMP(3) WHERE name AND locked_by =
token AND lock_until > UTC_TIMESTAMP(3)``; renew sets ``lock_until`` = now + ttl under the same
condition; no row = NotOwner (expired, or taken over). ``locked_by`` is a token unique per
acquire (ShedLock writes the host name). ShedLock's own unlock has no owner condition
(``UPDATE ... SET lock_until = now WHERE name = ?``): ``shedlock_unlock=true`` uses exactly that,
so a holder whose lease ran out ends its successor's lease instead of being refused.

Fence: a counter in the lock's row, incremented by the statement that takes the lock, so the
fence is committed with the grant (``LAST_INSERT_ID(expr)`` hands the new value back in the
same statement's reply). Rows are never deleted, so the counter only grows.

Timeouts: connect, read and write timeouts on the client; ``max_statement_time`` and
``innodb_lock_wait_timeout`` on the server. A statement whose reply is lost leaves the outcome
unknown, and the client reconnects before its next statement. A connection the server closed
(a server restart) is noticed without a round trip and replaced before the next statement: the
lease is a row, so a holder can still release it after the restart; release and renew keep
trying to connect for up to ``connect_timeout_s`` while the server is down (nothing was sent).

Guarantees claimed: mutual exclusion while every holder finishes within its TTL by the database
server's clock (one server; the server kind flushes the redo log at every commit, so a grant
acknowledged before a crash is still there after it).

Known to break it: a holder paused past its TTL ("revoked while held"; the fence catches the
stale write: tested with client-pause); a jump of the database server's wall clock (the clock
nemesis moves ``UTC_TIMESTAMP``). With ``shedlock_unlock=true`` the late holder's release also
frees the lock under its successor. A server kill and restart is expected safe (tested): the
leases are rows, durable at commit; a holder's lease just runs on while the server is down.
"""

from __future__ import annotations

import select
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import pymysql
from pymysql.constants import CLIENT, ER

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

TABLE = "shedlock"
_MAX_POLLS = 100_000  # a hard bound on top of the wait deadline
_MAX_CONNECT_ATTEMPTS = 200  # a hard bound on top of the retry deadline
_RECONNECT_PAUSE_S = 0.05
# The server's own timeouts: the statement was rolled back, certainly without effect.
_ROLLED_BACK = frozenset({ER.LOCK_WAIT_TIMEOUT, 1969})  # 1969: max_statement_time exceeded
_NOW = "UTC_TIMESTAMP(3)"
_UNTIL = f"{_NOW} + INTERVAL %(ttl_us)s MICROSECOND"

_INSERT = f"""
INSERT INTO {TABLE} (name, lock_until, locked_at, locked_by, fence)
VALUES (%(name)s, {_UNTIL}, {_NOW}, %(token)s, 1)
"""
_TAKE_OVER = f"""
UPDATE {TABLE} SET lock_until = {_UNTIL}, locked_at = {_NOW}, locked_by = %(token)s,
       fence = LAST_INSERT_ID(fence + 1)
 WHERE name = %(name)s AND lock_until <= {_NOW}
"""
_RELEASE = f"""
UPDATE {TABLE} SET lock_until = {_NOW}
 WHERE name = %(name)s AND locked_by = %(token)s AND lock_until > {_NOW}
"""
_SHEDLOCK_UNLOCK = f"UPDATE {TABLE} SET lock_until = {_NOW} WHERE name = %(name)s"
_RENEW = f"""
UPDATE {TABLE} SET lock_until = {_UNTIL}
 WHERE name = %(name)s AND locked_by = %(token)s AND lock_until > {_NOW}
"""
_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  lock_until TIMESTAMP(3) NOT NULL,
  locked_at TIMESTAMP(3) NOT NULL,
  locked_by VARCHAR(255) NOT NULL,
  fence BIGINT NOT NULL
) ENGINE=InnoDB
"""


class MysqlLeaseBackend(Backend):
    name: ClassVar[str] = "mysql-lease"
    description: ClassVar[str] = "ShedLock's lease table on MariaDB (database clock)"
    fence: ClassVar[str] = "counter in the lock's row, set by the granting statement"
    fenced = True
    options: ClassVar[Mapping[str, Option | str]] = {
        "dbname": Option("lockharness", "database"),
        "user": Option("lockharness", "database user"),
        "connect_timeout_s": Option(3, "connect timeout", lo=1, hi=MAX_MS),
        "op_timeout_s": Option(5, "per-statement timeout", lo=1, hi=MAX_MS),
        "poll_ms": Option(20, "pause between attempts", lo=1, hi=MAX_MS),
        "shedlock_unlock": Option(False, "release as ShedLock does"),
    }

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        self.connect_timeout_s: int = self.values["connect_timeout_s"]
        self.op_timeout_s: int = self.values["op_timeout_s"]
        self.poll_s = self.values["poll_ms"] / 1000
        self.shedlock_unlock: bool = self.values["shedlock_unlock"]

    def expiry(self) -> Expiry:
        return "ttl"

    def servers(self) -> ServerNeed:
        return ServerNeed("mariadb", 1)

    def setup(self, endpoints: list[Endpoint]) -> None:
        s = self._session(endpoints)
        try:
            s.execute(_CREATE, {})
        finally:
            s.drop()

    def _session(self, endpoints: list[Endpoint]) -> Session:
        return Session(endpoints[0], self.opts["dbname"], self.opts["user"],
                       self.connect_timeout_s, self.op_timeout_s)  # fmt: skip

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return MysqlLeaseClient(self._session(endpoints), self.poll_s, self.shedlock_unlock)


class Session:
    """One lazily (re)opened autocommit connection; any error drops it."""

    def __init__(
        self, ep: Endpoint, dbname: str, user: str, connect_timeout_s: int, op_timeout_s: int
    ) -> None:
        self.ep = ep
        self.dbname = dbname
        self.user = user
        self.connect_timeout_s = connect_timeout_s
        self.op_timeout_s = op_timeout_s
        self.conn: pymysql.connections.Connection | None = None

    def _get(self, retry_s: float = 0.0) -> pymysql.connections.Connection:
        """The open connection; LockFailed when none can be opened (nothing took effect).
        ``retry_s``: keep trying that long (a restarting server), bounded in attempts too."""
        if self.conn is not None:
            return self.conn
        deadline = time.monotonic() + retry_s
        for attempt in range(_MAX_CONNECT_ATTEMPTS):
            try:
                self.conn = self._connect()
                return self.conn
            except pymysql.MySQLError as e:
                if time.monotonic() >= deadline or attempt == _MAX_CONNECT_ATTEMPTS - 1:
                    raise LockFailed(f"cannot connect to MariaDB: {e}") from e
                time.sleep(_RECONNECT_PAUSE_S)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _connect(self) -> pymysql.connections.Connection:
        op = self.op_timeout_s
        return pymysql.connect(
            host=self.ep.host, port=self.ep.port, user=self.user, database=self.dbname,
            autocommit=True, connect_timeout=self.connect_timeout_s,
            read_timeout=op, write_timeout=op,
            client_flag=CLIENT.FOUND_ROWS,  # rowcount = rows matched, not changed
            # The server gives up before the client does: a reply then says so.
            init_command=(
                "SET time_zone = '+00:00', max_statement_time = "
                f"{max(op - 1, 0.5)}, innodb_lock_wait_timeout = {max(op - 1, 1)}"
            ),
        )  # fmt: skip

    def execute(self, sql: str, params: dict, retry_s: float = 0.0) -> tuple[int, int]:
        """(rows matched, LAST_INSERT_ID of the statement). An error drops the connection;
        ``retry_s``: how long to keep trying to connect first."""
        self._drop_if_closed_by_server()
        conn = self._get(retry_s)
        try:
            with conn.cursor() as cur:
                n = cur.execute(sql, params)
                return n, cur.lastrowid
        except pymysql.IntegrityError:
            raise  # the server refused the statement; the connection is fine
        except pymysql.MySQLError as e:
            self.drop()
            if e.args and e.args[0] in _ROLLED_BACK:
                raise LockFailed(f"MariaDB gave up on the statement: {e}") from e
            raise  # e.g. the reply was lost: the outcome is unknown

    def _drop_if_closed_by_server(self) -> None:
        """The lease lives in a table, not in the connection: a connection the server has
        closed (a restarted server) is replaced before use, rather than sending a statement
        that certainly cannot run and leaving its outcome unknown. An idle connection has
        nothing to read unless the server closed it (EOF, or its last error packet before
        closing); the check is a zero-timeout select, no round trip."""
        sock = getattr(self.conn, "_sock", None) if self.conn is not None else None
        if sock is None:
            return
        try:
            readable = select.select([sock], [], [], 0)[0]
        except (OSError, ValueError):  # a socket already closed
            readable = [sock]
        if readable:
            self.drop()

    def drop(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                conn.close()
            except Exception:
                pass  # already broken: nothing to say goodbye to


class MysqlLeaseClient(LockClient):
    def __init__(self, session: Session, poll_s: float, shedlock_unlock: bool) -> None:
        self.session = session
        self.poll_s = poll_s
        self.shedlock_unlock = shedlock_unlock
        self.rows: set[str] = set()  # names whose row is known to exist: update, not insert
        # A holder whose server is restarting keeps trying to reach it to release or renew
        # (nothing was sent), as long as a connect may take.
        self.retry_s = float(session.connect_timeout_s)

    def _grant(self, params: dict) -> int | None:
        """One try: the new fence when granted, None when the lock is held."""
        if params["name"] not in self.rows:
            try:
                self.session.execute(_INSERT, params)
                self.rows.add(params["name"])
                return 1
            except pymysql.IntegrityError as e:
                if e.args[0] != ER.DUP_ENTRY:
                    raise
                self.rows.add(params["name"])
        n, fence = self.session.execute(_TAKE_OVER, params)
        return fence if n == 1 else None

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        token = uuid.uuid4().hex
        params = {"name": key, "token": token, "ttl_us": ttl_ms * 1000}
        deadline = time.monotonic() + wait_ms / 1000
        for _ in range(_MAX_POLLS):
            fence = self._grant(params)
            if fence is not None:
                return Lease(key, token, fence, float(ttl_ms))
            if time.monotonic() >= deadline:
                break
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        raise NotAcquired(f"lock {key!r} still held after {wait_ms} ms")

    def release(self, lease: Lease) -> None:
        params = {"name": lease.key, "token": lease.token}
        if self.shedlock_unlock:
            self.session.execute(_SHEDLOCK_UNLOCK, params, self.retry_s)  # no owner condition
            return
        if self.session.execute(_RELEASE, params, self.retry_s)[0] != 1:
            raise NotOwner(f"lease on {lease.key!r} expired or was taken over")

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        params = {"name": lease.key, "token": lease.token, "ttl_us": ttl_ms * 1000}
        if self.session.execute(_RENEW, params, self.retry_s)[0] != 1:
            raise NotOwner(f"lease on {lease.key!r} expired or was taken over")
        lease.validity_ms = float(ttl_ms)

    def close(self) -> None:
        self.session.drop()
