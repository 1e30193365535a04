"""MariaDB, from Debian's mariadb-server package: one ``mariadbd`` per node dir, run as ``mysql``.

``mariadb-install-db`` runs once per machine and server build into a template that each fresh
node dir copies (a copy takes under 0.1 s, the install 0.5-2 s). ``prepare`` also writes an
init file, run by the server at every start, that makes the harness's passwordless user
``lockharness``@``%`` (clients reach the node from any loopback address: the namespace,
proxies) and its database ``lockharness``.

The server is started with ``--no-defaults`` (nothing from /etc/mysql applies) on its node's
127.0.0.x address, with its socket and pid file in the node dir (the socket path is relative:
the server runs in its data dir, and a long run dir would exceed the 107-byte socket limit).

Durable: ``innodb_flush_log_at_trx_commit=1`` (every commit's redo log is written and flushed
before the client hears "ok") and ``innodb_doublewrite`` on, with the binary log off (so no
``sync_binlog`` and no two-phase commit between binlog and InnoDB): a SIGKILL of the server,
or of the machine, loses no acknowledged commit. InnoDB recovers from its redo log at restart.

As root the server runs as the ``mysql`` user, which must reach the node dir: the local runtime
sees to it without changing the user's directories (``reach.py``), as for PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .base import MissingBinary, Node, ServerKind, ServerStartError
from .postgres import _check_reachable, _chown_tree, _scratch, install_template

USER = "lockharness"
DATABASE = "lockharness"
_INSTALL_TIMEOUT_S = 60
_SBIN = ("/usr/sbin", "/usr/bin")
_ENV = {"LC_ALL": "C", "TZ": "UTC"}
# The same at install and at every start (a different redo log size makes the server rebuild
# its log at start); small, so a fresh data dir is 34 MB, not 114 MB.
_INNODB_FILES = ["--innodb-log-file-size=16M"]
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
            _check_reachable(node.dir, runs_as)
        init = node.dir / "init.sql"
        init.write_text(_INIT_SQL)
        if runs_as is not None:
            shutil.chown(init, runs_as, runs_as)
        if (node.data_dir / "mysql").is_dir():
            return  # a restart: InnoDB recovers from its redo log
        shutil.rmtree(node.data_dir, ignore_errors=True)
        shutil.copytree(_template(runs_as), node.data_dir, symlinks=True)
        if runs_as is not None:
            _chown_tree(node.data_dir, runs_as)

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
        return argv + _INNODB_FILES

    def env(self, node: Node) -> dict[str, str]:
        return dict(_ENV)

    def ready(self, node: Node) -> bool:
        """Ready = the harness's user connects and a query answers (the init file has run)."""
        return query(node.host, node.port, "SELECT 1") == 1

    def version(self, node: Node) -> str | None:
        got = query(node.host, node.port, "SELECT VERSION()")
        return str(got) if got else None


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


def _template(runs_as: str | None) -> Path:
    """A data dir made by ``mariadb-install-db`` once per machine and server build, then copied
    for each fresh node: a copy takes under 0.1 s where the install takes 0.5-2 s on two busy
    cores."""
    from harness.clock import default_cache_dir

    server = _program("mariadbd").stat()
    cache = default_cache_dir() / f"mariadb-template-{server.st_size}-{server.st_mtime_ns}"
    if (cache / "mysql").is_dir():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Built where the server's user reaches it, then copied beside the cache and renamed.
    work = _scratch(".mariadb-template-", cache.parent, runs_as)
    try:
        data = work / "data"
        argv = [
            str(_program("mariadb-install-db")),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *_INNODB_FILES,
        ]
        if runs_as is not None:
            argv.append(f"--user={runs_as}")
        try:
            done = subprocess.run(
                # TMPDIR: the work dir, which the server's user can write; a TMPDIR of the
                # caller's (a 0700 dir of root's) would make the bootstrap abort.
                argv, cwd=work, capture_output=True, text=True,
                env={**os.environ, **_ENV, "TMPDIR": str(work)}, timeout=_INSTALL_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise ServerStartError(f"mariadb-install-db took over {_INSTALL_TIMEOUT_S} s") from e
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            # The cause, not the closing "[ERROR] Aborting" after it.
            why = [ln for ln in lines if "[ERROR]" in ln and "Aborting" not in ln]
            raise ServerStartError(
                f"mariadb-install-db failed: {(why or lines[-1:] or ['(no output)'])[0]}"
            )
        install_template(data, cache, "mysql")
        return cache
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
