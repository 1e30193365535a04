"""PostgreSQL 15, from Debian's postgresql package: one server per node dir, run as ``postgres``.

The server refuses to run as root, so as root the runtime starts it as the ``postgres`` user;
that user must be able to reach the node dir, which the local runtime sees to without changing
the user's directories (``reach.py``). initdb runs once per machine, in a scratch dir the user
can reach, into a template that each fresh node dir copies.

Durability against the faults the harness injects (a process kill, not a power loss): every
commit is written to the kernel before it is acknowledged (``synchronous_commit=on``), so a
killed server restarts with every acknowledged commit; ``fsync=off`` only gives up what a power
loss would take. Dynamic shared memory lives in the data dir (``dynamic_shared_memory_type=mmap``)
rather than in ``/dev/shm``, so a killed server leaves no segment behind outside its run.

Failover mode (``options["failover"]``, two nodes): n1 starts as the primary (the template plus
a ``replication`` line in pg_hba.conf), n2 as a streaming replica cloned from it with
``pg_basebackup -R`` in ``prepare``. ``after_kill`` on the current primary promotes a live
replica (``pg_promote``), as a failover manager would at once. A node that was primary is always
re-cloned from the new primary when it restarts, with or without its data (simpler than
pg_rewind, and its old timeline holds writes the new primary never saw). ``options["sync"]``:
``"off"`` is asynchronous replication (a commit is acknowledged once the primary has it: what
the replica had not yet received is missing after a failover; reported as a non-durable
setting); ``"on"`` sets ``synchronous_standby_names='*'``: a commit waits for a replica's
flush, so commits block while no replica streams (as PostgreSQL documents).

``options["synchronous_commit"] = "off"`` (a backend option, reported as non-durable)
acknowledges a commit before its WAL is written, as the harness once did for speed: a kill then
loses the last acknowledged commits, and an asynchronous replica lags further behind.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .base import ImageRecipe, MissingBinary, Node, ServerKind, ServerStartError, wait_until
from .durability import Durability
from .reach import blocker, scratch_dir, user_ids

_INITDB_TIMEOUT_S = 60
_BASEBACKUP_TIMEOUT_S = 60
_PROMOTE_TIMEOUT_S = 15
_HBA = "local all all trust\nhost all all 127.0.0.0/8 trust\n"
_HBA_REPLICATION = "host replication all 127.0.0.0/8 trust\n"
#: An image's postgresql package creates no cluster of its own: each node initdbs its dir.
NO_MAIN_CLUSTER = "create_main_cluster = false\n"


class PostgresServer(ServerKind):
    kind = "postgres"
    package = "postgresql"
    binary = "postgres"
    ready_timeout = 20.0
    user = "postgres"
    in_containers = True
    image_recipe = ImageRecipe(
        ("postgresql",),
        path_globs=("/usr/lib/postgresql/*/bin",),
        files=(("etc/postgresql-common/createcluster.d/lockharness.conf", NO_MAIN_CLUSTER),),
    )
    official_image = "postgres:15"
    compose_names = ("postgres", "pg")
    client_port = 5432

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.failover = bool(self.options.get("failover", False))
        self.sync = self.options.get("sync", "off") == "on"
        if self.options.get("sync", "off") not in ("off", "on"):
            raise ValueError(f"postgres sync={self.options['sync']!r}: give off or on")
        self.synchronous_commit = self.options.get("synchronous_commit", "on")
        if self.synchronous_commit not in ("on", "off"):
            raise ValueError(
                f"postgres synchronous_commit={self.synchronous_commit!r}: give on or off"
            )
        #: fsync=off (the default, and the backend passes it only when chosen) survives a
        #: process kill, as the kernel has every written commit, but not a power cut
        self.fsync = self.options.get("fsync", "off")
        if self.fsync not in ("on", "off"):
            raise ValueError(f"postgres fsync={self.fsync!r}: give on or off")
        self.primary = "n1"  # failover mode: the node clients should find read-write
        self._former_primaries: set[str] = set()  # re-cloned at their next start

    def find_binary(self) -> str:
        if self.container:
            return self.binary
        return str(_bindir() / "postgres")

    def container_problem(self) -> str | None:
        if self.failover:
            return (
                "postgres failover=true clones replicas with the host's pg_basebackup: "
                "not in containers yet"
            )
        return None

    def container_command(self, node: Node, cluster: list[Node]) -> list[str]:
        """initdb (the image's) on a node without data, then the server, in one container."""
        data = str(node.data_dir)
        script = (
            f'[ -f "{data}/PG_VERSION" ] || {{ initdb -D "{data}" -U postgres --auth=trust '
            f'--encoding=UTF8 --locale=C --no-sync && printf "{_HBA}" > "{data}/pg_hba.conf"; }} '
            '&& exec "$@"'
        )
        return ["sh", "-c", script, "postgres", *self.command(node, cluster)]

    def version(self, node: Node) -> str | None:
        v = self._query(node, "SHOW server_version")
        return str(v) if v is not None else None

    def durability(self) -> Durability:
        local = f"synchronous_commit={self.synchronous_commit}, fsync={self.fsync}"
        if self.synchronous_commit == "off":
            return Durability(
                local + (", asynchronous replication" if self.failover and not self.sync else ""),
                "a commit is acknowledged before its WAL is written: a kill loses the last "
                "acknowledged commits (up to 3 x wal_writer_delay)",
            )
        if not self.failover:
            return Durability(local)
        if self.sync:
            return Durability(f"{local}, synchronous replication (synchronous=true)")
        return Durability(
            f"{local}, asynchronous replication (failover=true, synchronous=false)",
            "a commit the replica had not yet received when the primary was killed is lost "
            "at the failover",
        )

    def power_cut_refusal(self) -> str | None:
        """Why a power cut (kill lose_unsynced=true) would test the harness's default instead
        of a setting the user chose: fsync=off is the harness's, for speed."""
        if "fsync" in self.options:
            return None
        return (
            "postgres runs with fsync=off unless told (it survives a process kill, not a power "
            "cut): give --opt fsync=on (durable) or --opt fsync=off (to see what it loses)"
        )

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        if self.container:  # the container runs initdb itself (container_command)
            return
        runs_as = self.user if os.geteuid() == 0 else None
        if runs_as is not None:
            _check_reachable(node.dir, runs_as)
        if self.failover and node.name != self.primary:
            if fresh or node.name in self._former_primaries or not _has_data(node):
                self._clone_replica(node, cluster, runs_as)
            return
        if _has_data(node):
            return
        template = _template(runs_as)
        shutil.copytree(template, node.data_dir, symlinks=True)
        if self.failover:
            (node.data_dir / "pg_hba.conf").write_text(_HBA + _HBA_REPLICATION)
        if runs_as is not None:
            _chown_tree(node.data_dir, runs_as)

    def _clone_replica(self, node: Node, cluster: list[Node], runs_as: str | None) -> None:
        """A fresh streaming replica of the current primary (which must be running: at the
        first start LocalRuntime has just started n1, so wait for it, bounded)."""
        primary = _by_name(cluster, self.primary)
        if not wait_until(lambda: self._accepts(primary), self.ready_timeout, interval=0.05):
            raise ServerStartError(
                f"cannot clone replica {node.name}: primary {primary.name} did not accept "
                f"connections within {self.ready_timeout:.0f} s; see {primary.log_path}"
            )
        shutil.rmtree(node.data_dir, ignore_errors=True)
        argv = [
            str(_bindir() / "pg_basebackup"),
            "-h", primary.host, "-p", str(primary.port), "-U", "postgres",
            "-D", str(node.data_dir),
            "-R",  # standby.signal + primary_conninfo: it streams from the primary
            "-X", "stream", "-c", "fast", "--no-sync",
        ]  # fmt: skip
        env = {**os.environ, **self.env(node)}
        # As the server itself runs: the user's own group and no others (see reach.blocker).
        as_user = {"user": runs_as, "group": runs_as, "extra_groups": []} if runs_as else {}
        try:
            done = subprocess.run(
                argv, cwd=node.dir, capture_output=True, text=True, env=env,
                timeout=_BASEBACKUP_TIMEOUT_S, **as_user,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise ServerStartError(
                f"pg_basebackup of {node.name} took over {_BASEBACKUP_TIMEOUT_S} s"
            ) from e
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise ServerStartError(
                f"pg_basebackup of {node.name} from {primary.name} failed: {last[0]}"
            )
        self._former_primaries.discard(node.name)

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        settings = {
            "listen_addresses": node.host,
            "port": str(node.port),
            "unix_socket_directories": "",
            # Survives a process kill (the kernel has every acknowledged commit), not a
            # power loss: see the module's docstring.
            "fsync": self.fsync,
            "synchronous_commit": self.synchronous_commit,
            "dynamic_shared_memory_type": "mmap",
            "max_connections": str(self.options.get("max_connections", 200)),
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        if self.failover:
            settings |= {
                "cluster_name": node.name,  # the replica's name in pg_stat_replication
                "wal_level": "replica",
                "max_wal_senders": "10",
                "wal_keep_size": "256MB",  # a re-cloned or restarted replica can catch up
                "hot_standby": "on",
                # A replica whose primary died sleeps this long between WAL retries, and a
                # promote request arriving in that sleep waits for it (5 s by default).
                "wal_retrieve_retry_interval": "100ms",
            }
            if self.sync:
                settings |= {"synchronous_standby_names": "*"}
        argv = [self.find_binary(), "-D", str(node.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def env(self, node: Node) -> dict[str, str]:
        return {"LC_ALL": "C", "TZ": "UTC"}

    def ready(self, node: Node) -> bool:
        """Ready = accepts a connection and answers a query; in failover mode the primary is
        out of recovery (takes writes) and a replica's WAL receiver is streaming."""
        if not self.failover:
            return self._accepts(node)
        if node.name == self.primary:
            sql = "SELECT NOT pg_is_in_recovery()"
        else:
            sql = "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')"
        return self._query(node, sql) is True

    def cluster_ready(self, cluster: list[Node]) -> bool:
        if not self.failover:
            return super().cluster_ready(cluster)
        if not all(self.ready(n) for n in cluster):
            return False
        replicas = [n.name for n in cluster if n.name != self.primary]
        streaming = self._query(
            _by_name(cluster, self.primary),
            "SELECT count(*) FROM pg_stat_replication"
            " WHERE state = 'streaming' AND application_name = ANY(%s)",
            (replicas,),
        )
        return streaming == len(replicas)

    def after_kill(self, node: Node, cluster: list[Node]) -> dict[str, Any] | None:
        """The primary died: promote a live replica and wait until it takes writes."""
        if not self.failover or node.name != self.primary:
            return None
        self._former_primaries.add(node.name)
        live = [n for n in cluster if n is not node and n.alive() and not n.paused]
        if not live:
            return {"promoted": None, "why": "no live replica to promote"}
        target = live[0]
        t0 = time.monotonic()
        # pg_promote waits (up to its timeout) for the end of recovery; a lost answer is
        # settled by the polling below.
        self._query(target, f"SELECT pg_promote(true, {_PROMOTE_TIMEOUT_S})", timeout=3)
        took_writes = wait_until(
            lambda: self._query(target, "SELECT NOT pg_is_in_recovery()") is True,
            _PROMOTE_TIMEOUT_S,
            interval=0.02,
        )
        ms = round((time.monotonic() - t0) * 1000, 1)
        if not took_writes:
            return {"promoted": None, "why": f"{target.name} still in recovery after {ms} ms"}
        self.primary = target.name
        return {"promoted": target.name, "promote_ms": ms}

    def _accepts(self, node: Node) -> bool:
        return self._query(node, "SELECT 1") == 1

    @staticmethod
    def _query(node: Node, sql: str, params: tuple = (), timeout: int = 1) -> Any:
        """The first column of the first row, or None when the node cannot answer."""
        import psycopg  # only the harness process needs it, and only for this kind

        try:
            with psycopg.connect(
                host=node.host, port=node.port, user="postgres", dbname="postgres",
                connect_timeout=timeout, autocommit=True,
            ) as conn:  # fmt: skip
                row = conn.execute(sql, params).fetchone()
            return row[0] if row else None
        except psycopg.Error:
            return None


def _has_data(node: Node) -> bool:
    return (node.data_dir / "PG_VERSION").exists()


def _by_name(cluster: list[Node], name: str) -> Node:
    for n in cluster:
        if n.name == name:
            return n
    raise ServerStartError(f"postgres cluster has no node {name}")


def _template(runs_as: str | None) -> Path:
    """An initdb'd data dir, made once per machine and PostgreSQL version and then copied:
    a copy takes ~0.2 s where initdb takes 1-3 s on two busy cores."""
    from harness.clock import default_cache_dir

    bindir = _bindir()
    cache = default_cache_dir() / f"pg-template-{bindir.parent.name}"
    if (cache / "PG_VERSION").exists():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    work = _scratch(".pg-template-", cache.parent, runs_as)
    try:
        data = work / "data"
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
            raise ServerStartError(f"initdb took over {_INITDB_TIMEOUT_S} s") from e
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise ServerStartError(f"initdb failed: {last[0]}")
        # Clients reach each node from any loopback address (the namespace, proxies).
        (data / "pg_hba.conf").write_text(_HBA)
        install_template(data, cache, "PG_VERSION")
        return cache
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _scratch(prefix: str, cache_parent: Path, runs_as: str | None) -> Path:
    """Where a template is built: beside the cache, or, when it is built as ``runs_as``, in a
    scratch dir that user can reach (the cache may sit under a 0700 home), owned by it."""
    if runs_as is None:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=cache_parent))
    work = scratch_dir(prefix, *user_ids(runs_as))
    shutil.chown(work, runs_as, runs_as)
    return work


def install_template(data: Path, cache: Path, marker: str) -> None:
    """Copy a built template beside the cache and rename it into place, so concurrent runs
    never see half of one (a lost race leaves the winner's)."""
    staged = Path(tempfile.mkdtemp(prefix=".template-", dir=cache.parent))
    try:
        shutil.copytree(data, staged / "data", symlinks=True)
        try:
            os.rename(staged / "data", cache)
        except OSError:
            if not (cache / marker).exists():
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)


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


def _check_reachable(path: Path, user: str) -> None:
    """The runtime runs the server as the user and the user's own group, with no supplementary
    groups; it places the node where that user reaches it (``reach.py``): say so if not."""
    d = blocker(path, *user_ids(user))
    if d is not None:
        raise ServerStartError(
            f"user {user} cannot enter {d} (mode {stat.filemode(d.stat().st_mode)}); "
            "run from a directory it can reach"
        )
