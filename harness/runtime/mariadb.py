"""MariaDB, from Debian's mariadb-server package: one ``mariadbd`` per node dir, run as ``mysql``.

``prepare`` initialises a fresh data dir with ``mariadb-install-db`` (about half a second, so
no template is cached), and writes an init file, run by the server at every start, that makes
the harness's passwordless user ``lockharness``@``%`` (clients reach the node from any loopback
address: the namespace, proxies) and its database ``lockharness``.

The server is started with ``--no-defaults`` (nothing from /etc/mysql applies) on its node's
127.0.0.x address, with its socket and pid file in the node dir (the socket path is relative:
the server runs in its data dir, and a long run dir would exceed the 107-byte socket limit).

Durable: ``innodb_flush_log_at_trx_commit=1`` (every commit's redo log is written and flushed
before the client hears "ok") and ``innodb_doublewrite`` on, with the binary log off (so no
``sync_binlog`` and no two-phase commit between binlog and InnoDB): a SIGKILL of the server,
or of the machine, loses no acknowledged commit. InnoDB recovers from its redo log at restart.

As root the server runs as the ``mysql`` user, which must reach the node dir: ``prepare``
adds the search bit to ancestors the harness owns that lack it, as for PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .base import MissingBinary, Node, RuntimeError_, ServerKind
from .postgres import _make_reachable

USER = "lockharness"
DATABASE = "lockharness"
_INSTALL_TIMEOUT_S = 60
_SBIN = ("/usr/sbin", "/usr/bin")
_INIT_SQL = (
    f"CREATE USER IF NOT EXISTS '{USER}'@'%';\n"
    f"GRANT ALL ON *.* TO '{USER}'@'%';\n"
    f"CREATE DATABASE IF NOT EXISTS {DATABASE};\n"
)


class MariadbServer(ServerKind):
    kind = "mariadb"
    package = "mariadb-server"
    binary = "mariadbd"
    ready_timeout = 30.0
    user = "mysql"  # mariadbd refuses to run as root

    def find_binary(self) -> str:
        return str(_program("mariadbd"))

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        runs_as = self.user if os.geteuid() == 0 else None
        if runs_as is not None:
            _make_reachable(node.dir, runs_as)
        init = node.dir / "init.sql"
        init.write_text(_INIT_SQL)
        if runs_as is not None:
            shutil.chown(init, runs_as, runs_as)
        if (node.data_dir / "mysql").is_dir():
            return  # a restart: InnoDB recovers from its redo log
        shutil.rmtree(node.data_dir, ignore_errors=True)
        argv = [
            str(_program("mariadb-install-db")),
            "--no-defaults",
            f"--datadir={node.data_dir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *self._innodb_files(),
        ]
        if runs_as is not None:
            argv.append(f"--user={runs_as}")
        try:
            done = subprocess.run(
                argv, cwd=node.dir, capture_output=True, text=True, env=self._env_all(node),
                timeout=_INSTALL_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise RuntimeError_(f"mariadb-install-db took over {_INSTALL_TIMEOUT_S} s") from e
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError_(f"mariadb-install-db for {node.name} failed: {last[0]}")

    @staticmethod
    def _innodb_files() -> list[str]:
        # The same at install and at every start (a different redo log size makes the server
        # rebuild its log at start); small, so a fresh node is 34 MB, not 114 MB.
        return ["--innodb-log-file-size=16M"]

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        settings = {
            "datadir": str(node.data_dir),
            "socket": "../mysqld.sock",  # relative to the data dir: the node dir
            "pid-file": str(node.dir / "mysqld.pid"),
            "bind-address": node.host,
            "port": str(node.port),
            "init-file": str(node.dir / "init.sql"),
            "tmpdir": str(node.dir),
            "skip-name-resolve": None,
            "skip-log-bin": None,
            # Durability: flush the redo log at every commit; torn pages repaired at recovery.
            "innodb-flush-log-at-trx-commit": "1",
            "innodb-doublewrite": "ON",
            "innodb-buffer-pool-size": "32M",
            "innodb-buffer-pool-load-at-startup": "OFF",
            "innodb-buffer-pool-dump-at-shutdown": "OFF",
            "innodb-use-native-aio": "OFF",  # no io_uring/libaio needed (containers)
            "performance-schema": "OFF",
            "max-connections": str(self.options.get("max_connections", 200)),
            "character-set-server": "utf8mb4",
            "default-time-zone": "+00:00",
        }
        argv = [self.find_binary(), "--no-defaults"]
        for name, value in settings.items():
            argv.append(f"--{name}" if value is None else f"--{name}={value}")
        return argv + self._innodb_files()

    def env(self, node: Node) -> dict[str, str]:
        return {"LC_ALL": "C", "TZ": "UTC"}

    def _env_all(self, node: Node) -> dict[str, str]:
        return {**os.environ, **self.env(node)}

    def ready(self, node: Node) -> bool:
        """Ready = the harness's user connects and a query answers (the init file has run)."""
        return query(node.host, node.port, "SELECT 1") == 1


def query(host: str, port: int, sql: str, timeout: int = 1) -> object:
    """The first column of the first row, or None when the server cannot answer."""
    import pymysql  # only the harness process needs it, and only for this kind

    try:
        conn = pymysql.connect(
            host=host, port=port, user=USER, database=DATABASE, connect_timeout=timeout,
            read_timeout=timeout, write_timeout=timeout,
        )  # fmt: skip
    except pymysql.MySQLError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
        return row[0] if row else None
    except pymysql.MySQLError:
        return None
    finally:
        conn.close()


def _program(name: str) -> Path:
    """A MariaDB program: on PATH, else in /usr/sbin or /usr/bin (sbin is not on every
    user's PATH)."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in _SBIN if (Path(d) / name).exists()), None
    )
    if found is None:
        raise MissingBinary(
            f"{name} not found: install the Debian package mariadb-server "
            "(apt-get install -y --no-install-recommends mariadb-server)"
        )
    return Path(found)
