"""Shared test helpers: real servers only; a missing binary skips with a visible reason."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness"]
SHARED_DATA = ROOT.parent / "shared" / "data"

# A suite started in the background of a non-interactive shell (``cmd &``, ``nohup``) inherits
# SIGINT ignored, and so does every process it starts: the tests of what a Ctrl-C does would
# see none. Python's own handler makes it deliverable again here and default in the children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def need_binary(name: str, package: str) -> None:
    if shutil.which(name) is None:
        pytest.skip(f"{name} not installed (Debian package {package}); run ./setup.sh as root")


@pytest.fixture
def redis_bin() -> None:
    need_binary("redis-server", "redis-server")


def need_server(kind: str) -> None:
    """Skip, saying why, when the server program of ``kind`` (redis, postgres ...) is missing."""
    from harness.runtime import MissingBinary
    from harness.runtime.kinds import server_kind

    try:
        server_kind(kind).find_binary()
    except MissingBinary as e:
        pytest.skip(str(e))


@pytest.fixture
def store() -> Iterator[Path]:
    """A run store. Not under pytest's tmp_path: PostgreSQL and MariaDB run as their own users,
    which must traverse every ancestor, and each pytest session (others may run at the same
    time) resets its base directory to mode 0700."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lockharness-store-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


@pytest.fixture(scope="session")
def real_toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API URL of a real Toxiproxy: ``$TOXIPROXY_URL``, else Shopify's toxiproxy-server
    (``$TOXIPROXY_SERVER``, or ``../shared/tools/toxiproxy/``) started here on loopback and
    stopped by its pid at the end. Skips, saying why, only when neither exists."""
    given = os.environ.get("TOXIPROXY_URL")
    if given:
        yield given
        return
    from harness.runtime import LocalRuntime
    from harness.runtime.base import MissingBinary
    from harness.runtime.toxiproxy_kind import url

    with LocalRuntime(tmp_path_factory.mktemp("toxiproxy-server")) as rt:
        try:
            node = rt.start("toxiproxy-server", 1, own_uids=False).nodes[0]
        except MissingBinary as e:
            pytest.skip(f"no real Toxiproxy: TOXIPROXY_URL is not set and {e}")
        yield url(node)


def harness(*args: str, timeout: float = 120, env: dict | None = None, cwd: Path | None = None):
    """Run the real ``harness`` command line; returns the CompletedProcess."""
    return subprocess.run(
        [*HARNESS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def proc_rows() -> dict[int, tuple[str, int]]:
    """{pid: (state, ppid)} of every process, read from /proc (the tests' own reading, not the
    harness's: a cleanup is checked by code it does not share)."""
    rows = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                f = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            rows[int(entry)] = (f[0], int(f[1]))
    return rows


def descendants(root: int) -> set[int]:
    """Every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid) in proc_rows().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found
