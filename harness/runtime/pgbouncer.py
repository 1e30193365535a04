"""PgBouncer, from Debian's pgbouncer package: a connection pooler in front of PostgreSQL.

One node, the front of a ``postgres`` cluster of one server (its upstream): every database of
that server is reachable through it (``* = host=... port=...``), each client authenticated as
the user it names (``trust``, as the server's own pg_hba is). ``pool_mode`` is the option
``pooler``: ``transaction`` (a server connection is a client's for one transaction only, then
goes back to the pool; the next statement may run on another) or ``session`` (a client keeps
its server connection until it disconnects). Server connections are reused most recently used
first (PgBouncer's default), as deployed.

PgBouncer refuses to run as root: as root it runs as ``postgres``, like the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Node, ServerKind, ServerStartError

MODES = ("transaction", "session")
POOL_SIZE = 20  # server connections per database and user: more than a run's usual clients


class PgBouncerServer(ServerKind):
    kind = "pgbouncer"
    package = "pgbouncer"
    binary = "pgbouncer"
    user = "postgres"
    ready_timeout = 20.0

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.mode = self.options.get("pool_mode", "transaction")
        if self.mode not in MODES:
            raise ValueError(f"pgbouncer pool_mode={self.mode!r}: give one of {', '.join(MODES)}")

    def find_binary(self) -> str:
        # Debian installs it in /usr/sbin, which a user's PATH may lack.
        if not self.container and Path("/usr/sbin/pgbouncer").exists():
            return "/usr/sbin/pgbouncer"
        return super().find_binary()

    def config_path(self, node: Node) -> Path:
        return node.dir / "pgbouncer.ini"

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        upstream = list(self.options.get("upstream") or [])
        if len(upstream) != 1:
            raise ServerStartError(
                f"pgbouncer fronts one PostgreSQL server, got {len(upstream)} (failover is "
                "not supported behind it)"
            )
        server = upstream[0]
        users = node.dir / "userlist.txt"
        users.write_text('"postgres" ""\n')
        self.config_path(node).write_text(
            "[databases]\n"
            f"* = host={server.host} port={server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {node.host}\n"
            f"listen_port = {node.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"pool_mode = {self.mode}\n"
            "max_client_conn = 1000\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "admin_users = postgres\n"
            # logs go to stderr: the node's server.log
            "logfile =\n"
            "pidfile =\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [self.find_binary(), str(self.config_path(node))]

    def ready(self, node: Node) -> bool:
        """Ready = a query goes through it to the server."""
        return self._query(node, "postgres", "SELECT 1") == 1

    def version(self, node: Node) -> str | None:
        v = self._query(node, "pgbouncer", "SHOW VERSION")
        return str(v) if v is not None else None

    @staticmethod
    def _query(node: Node, dbname: str, sql: str) -> Any:
        """The first column of the first row, or None. Simple query protocol (the admin
        console takes no other) and no prepared statements (a transaction pool has none)."""
        import psycopg  # only the harness process needs it, and only for this kind

        try:
            with psycopg.connect(
                host=node.host, port=node.port, user="postgres", dbname=dbname,
                connect_timeout=1, autocommit=True, prepare_threshold=None,
                cursor_factory=psycopg.ClientCursor,
            ) as conn:  # fmt: skip
                row = conn.execute(sql).fetchone()
            return row[0] if row else None
        except psycopg.Error:
            return None
