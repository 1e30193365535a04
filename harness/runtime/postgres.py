"""PostgreSQL 15, from Debian's postgresql package: one server per node dir, run as ``postgres``.

The server refuses to run as root, so as root the runtime starts it as the ``postgres`` user;
that user must be able to reach the node dir, so ``prepare`` adds a search bit (x, not read) to
ancestors the harness owns that lack it (pytest's 0700 temp dirs, for one). initdb runs once
per machine into a template that each fresh node dir copies; durability is traded for speed
(fsync off): the data is throwaway test state.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from .base import MissingBinary, Node, RuntimeError_, ServerKind

_INITDB_TIMEOUT_S = 60


class PostgresServer(ServerKind):
    kind = "postgres"
    package = "postgresql"
    binary = "postgres"
    ready_timeout = 20.0
    user = "postgres"

    def find_binary(self) -> str:
        return str(_bindir() / "postgres")

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        runs_as = self.user if os.geteuid() == 0 else None
        if runs_as is not None:
            _make_reachable(node.dir, runs_as)
        if (node.data_dir / "PG_VERSION").exists():
            return
        template = _template(runs_as)
        shutil.copytree(template, node.data_dir, symlinks=True)
        if runs_as is not None:
            _chown_tree(node.data_dir, runs_as)

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        settings = {
            "listen_addresses": node.host,
            "port": str(node.port),
            "unix_socket_directories": "",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": str(self.options.get("max_connections", 200)),
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        argv = [self.find_binary(), "-D", str(node.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def env(self, node: Node) -> dict[str, str]:
        return {"LC_ALL": "C", "TZ": "UTC"}

    def ready(self, node: Node) -> bool:
        """Ready = accepts a connection and answers a query."""
        import psycopg  # only the harness process needs it, and only for this kind

        try:
            with psycopg.connect(
                host=node.host, port=node.port, user="postgres", dbname="postgres",
                connect_timeout=1,
            ) as conn:  # fmt: skip
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


def _template(runs_as: str | None) -> Path:
    """An initdb'd data dir, made once per machine and PostgreSQL version and then copied:
    a copy takes ~0.2 s where initdb takes 1-3 s on two busy cores."""
    from harness.clock import default_cache_dir

    bindir = _bindir()
    cache = default_cache_dir() / f"pg-template-{bindir.parent.name}"
    if (cache / "PG_VERSION").exists():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the cache and renamed into place, so concurrent runs never see half of it.
    work = Path(tempfile.mkdtemp(prefix=".pg-template-", dir=cache.parent))
    try:
        data = work / "data"
        if runs_as is not None:
            _make_reachable(data, runs_as)
            shutil.chown(work, runs_as, runs_as)
        argv = [
            str(bindir / "initdb"),
            "-D", str(data),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv, cwd=work, capture_output=True, text=True,
                timeout=_INITDB_TIMEOUT_S, user=runs_as,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise RuntimeError_(f"initdb took over {_INITDB_TIMEOUT_S} s") from e
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError_(f"initdb failed: {last[0]}")
        # Clients reach each node from any loopback address (the namespace, proxies).
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.0/8 trust\n")
        try:
            os.rename(data, cache)
        except OSError:
            if not (cache / "PG_VERSION").exists():  # lost a race: the winner's copy is there
                raise
        return cache
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _chown_tree(root: Path, user: str) -> None:
    shutil.chown(root, user, user)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), *_ids(user))


def _ids(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def _bindir() -> Path:
    """PostgreSQL's program dir: ``pg_config --bindir``, else where ``postgres`` is on PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out and (Path(out) / "postgres").exists() and (Path(out) / "initdb").exists():
            return Path(out)
    found = shutil.which("postgres")
    if found is not None and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    raise MissingBinary(
        "postgres/initdb not found: install the Debian package postgresql "
        "(apt-get install -y postgresql)"
    )


def _make_reachable(path: Path, user: str) -> None:
    """Give ``user`` search access down to ``path``, changing only dirs the harness owns.

    The runtime runs the server as the user and the user's own group, with no supplementary
    groups: on a dir of that group the group bits decide, elsewhere the "other" bits.
    """
    pw = pwd.getpwnam(user)
    uid = pw.pw_uid
    me = os.geteuid()
    groups = {pw.pw_gid}
    for d in reversed(Path(path).resolve().parents):
        st = d.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if st.st_mode & bit:
            continue
        if st.st_uid != me:
            raise RuntimeError_(
                f"user {user} cannot enter {d} (mode {stat.filemode(st.st_mode)}); "
                f"run from a directory it can reach, or chmod a+x {d}"
            )
        os.chmod(d, st.st_mode | bit)
