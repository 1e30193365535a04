"""Where a server that runs under another user (PostgreSQL and MariaDB as root, nodes under
uids of their own) can reach its files, without changing the user's directories.

A store under a 0700 directory (``/root``, a clone in a home) is out of such a server's reach.
The harness once added the search bit (o+x) to every ancestor and never took it back; now the
node's dir is put in a directory of the harness's own under the temp dir (mode 0711, the
node's dir owned by the server's user), the store holds a link to it during the run, and
teardown (or the guard of a SIGKILLed run, or ``harness doctor --clean``) moves it back into
the store (``lifeline.bring_back``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

from .base import Node, ServerStartError


def user_ids(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def blocker(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to ``path`` (itself included) that a process of ``uid``
    and group ``gid`` alone (no supplementary groups, as the runtime starts servers) cannot
    enter; None: it reaches ``path``."""
    if uid == 0:
        return None
    p = Path(path).resolve()
    for d in [*reversed(p.parents), p]:
        try:
            st = d.stat()
        except FileNotFoundError:
            return None  # made later by the harness, as the server's user when it matters
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return d
    return None


def scratch_dir(prefix: str, uid: int, gid: int) -> Path:
    """A new directory of the harness's own (mode 0711) that ``uid`` can enter: under $TMPDIR
    when set, else /var/tmp (on disk: an etcd node's data is 128 MB, and /tmp may be a small
    tmpfs), else /tmp."""
    bases = [os.environ["TMPDIR"]] if os.environ.get("TMPDIR") else []
    for base in dict.fromkeys([*bases, "/var/tmp", "/tmp", tempfile.gettempdir()]):
        if os.path.isdir(base) and blocker(Path(base), uid, gid) is None:
            d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
            os.chmod(d, 0o711)
            return d
    raise ServerStartError(
        f"no temp directory that uid {uid} can enter ($TMPDIR, /var/tmp, /tmp); set TMPDIR to one"
    )


def place_outside(node: Node, outside: Path) -> Path:
    """Move ``node``'s dir (new, empty) into ``outside``; the store keeps a link to it, which
    is returned (``lifeline.bring_back`` undoes it)."""
    real = outside / node.dir.name
    real.mkdir()
    link = node.dir
    link.rmdir()  # just made by loopback_nodes, empty
    link.symlink_to(real)
    node.dir = real
    return link


class OutOfReach:
    """The node dirs a runtime put outside the store because their server's user could not
    reach it: one scratch dir for the run, and each dir's link in the store."""

    def __init__(self) -> None:
        self.outside: Path | None = None
        self.moved: list[tuple[Path, Path]] = []  # (node dir outside, its link in the store)

    def place(self, node: Node, uid: int, gid: int) -> Path | None:
        """Put ``node``'s dir where ``uid`` reaches it when the store is not; its link, or None
        when the dir stays where it is."""
        if blocker(node.dir, uid, gid) is None:
            return None
        if self.outside is None:
            self.outside = scratch_dir("lockharness-nodes-", uid, gid)
        link = place_outside(node, self.outside)
        self.moved.append((node.dir, link))
        return link

    def bring_back(self) -> None:
        from .lifeline import bring_back  # lifeline's guard does the same after a SIGKILL

        for real, link in self.moved:
            bring_back(real, link)
        if self.outside is not None:
            shutil.rmtree(self.outside, ignore_errors=True)
