"""A filesystem that loses what was never fsynced: a power cut for one server's data directory.

A killed process keeps everything it wrote, since the kernel has it; a power cut keeps only what
was fsynced. The kill nemesis's ``lose_unsynced=true`` needs the second, so the node's data
directory is this FUSE filesystem (a daemon of the harness, ``python -m harness.runtime.syncfs
BACKING MOUNTPOINT``): file data written is kept in memory, by 4 KiB page, and reaches the
backing directory only when the file is fsynced (``fsync``/``fdatasync``); ``lose`` drops every
page not yet synced, as the kill's power cut. Reads see the unsynced pages, as a page cache does.

What is durable at once: directory operations (create, rename, unlink, mkdir, chmod, chown), as
a journaling filesystem commits them in order within seconds. Losing them too would only widen
the losses this reproduces (Redis's everysec AOF, PostgreSQL with fsync=off).

The harness talks to the daemon on its stdin/stdout: it prints ``ready`` once mounted, ``lose``
is answered ``lost PAGES FILES``, ``sync`` (what the harness prepared before the server starts,
as initdb syncs its data dir) ``synced FILES``. It is mounted with ``auto_unmount`` (fusermount3
unmounts it when the daemon dies, even SIGKILLed) and the file system name
``lockharness-syncfs``, so ``mounts()`` finds any left behind in /proc/self/mountinfo.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .base import Node, ServerStartError
from .lifeline import die_with_parent

FSNAME = "lockharness-syncfs"
PAGE = 4096
MOUNT_TIMEOUT_S = 15.0


class _File:
    """One file's unsynced state: pages written since its last fsync, and its size then."""

    __slots__ = ("pages", "size", "low")

    def __init__(self, size: int) -> None:
        self.pages: dict[int, bytearray] = {}
        self.size = size  # the size the file has now (reads and getattr see it)
        self.low = size  # backing bytes at or past this were truncated away: they read as zero


def _operations() -> Any:
    """The FUSE operations (mfusepy is imported only by the daemon)."""
    import mfusepy as fuse

    class SyncFS(fuse.Operations):
        use_ns = True

        def __init__(self, root: str) -> None:
            self.root = root
            self.files: dict[str, _File] = {}
            self.mu = threading.Lock()

        def _p(self, path: str) -> str:
            return self.root + path

        def _owned(self, path: str) -> None:
            uid, gid, _ = fuse.fuse_get_context()
            os.lchown(self._p(path), uid, gid)

        # -- the unsynced pages -------------------------------------------------------------
        def _state(self, path: str) -> _File:
            f = self.files.get(path)
            if f is None:
                f = self.files[path] = _File(os.lstat(self._p(path)).st_size)
            return f

        def _backing(self, f: _File, fd: int, n: int) -> bytearray:
            page = bytearray(os.pread(fd, PAGE, n * PAGE)) if n * PAGE < f.low else bytearray()
            keep = max(0, min(PAGE, f.low - n * PAGE))
            del page[keep:]
            page.extend(bytes(PAGE - len(page)))
            return page

        def _page(self, f: _File, fd: int, n: int) -> bytearray:
            page = f.pages.get(n)
            if page is None:
                page = f.pages[n] = self._backing(f, fd, n)
            return page

        def sync_all(self) -> int:
            """Every file's unsynced pages to the backing directory, as ``sync`` does."""
            with self.mu:
                paths = list(self.files)
            for path in paths:
                fd = os.open(self._p(path), os.O_RDWR)
                try:
                    self.fsync(path, 0, fd)
                finally:
                    os.close(fd)
            return len(paths)

        def lose(self) -> tuple[int, int]:
            with self.mu:
                pages = sum(len(f.pages) for f in self.files.values())
                files = len(self.files)
                self.files.clear()
                return pages, files

        # -- files --------------------------------------------------------------------------
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = os.lstat(self._p(path))
            keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size")
            attrs: dict[str, Any] = {k: getattr(st, k) for k in keys}
            for t in ("st_atime", "st_mtime", "st_ctime"):
                attrs[t] = getattr(st, t + "_ns")  # use_ns: times in ns
            with self.mu:
                f = self.files.get(path)
                if f is not None:
                    attrs["st_size"] = f.size
            attrs["st_blocks"] = (attrs["st_size"] + 511) // 512
            attrs["st_blksize"] = PAGE
            return attrs

        def open(self, path: str, flags: int) -> int:
            return os.open(
                self._p(path), os.O_RDWR if os.path.isfile(self._p(path)) else os.O_RDONLY
            )

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            fd = os.open(self._p(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
            self._owned(path)
            return fd

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            with self.mu:
                f = self.files.get(path)
                if f is None:
                    return os.pread(fh, size, offset)
                end = min(offset + size, f.size)
                out = bytearray()
                pos = offset
                while pos < end:
                    n, at = divmod(pos, PAGE)
                    page = f.pages.get(n)
                    if page is None:
                        page = self._backing(f, fh, n)
                    take = min(PAGE - at, end - pos)
                    out += page[at : at + take]
                    pos += take
                return bytes(out)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            with self.mu:
                f = self._state(path)
                pos, i = offset, 0
                while i < len(data):
                    n, at = divmod(pos, PAGE)
                    take = min(PAGE - at, len(data) - i)
                    self._page(f, fh, n)[at : at + take] = data[i : i + take]
                    pos += take
                    i += take
                f.size = max(f.size, offset + len(data))
                return len(data)

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            with self.mu:
                f = self._state(path)
                for n in [n for n in f.pages if n * PAGE >= length]:
                    del f.pages[n]
                n, at = divmod(length, PAGE)
                if at and n in f.pages:
                    f.pages[n][at:] = bytes(PAGE - at)
                f.size = length
                f.low = min(f.low, length)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            with self.mu:
                f = self.files.pop(path, None)
                if f is None:
                    return 0
                os.ftruncate(fh, min(f.low, f.size))
                for n, page in sorted(f.pages.items()):
                    os.pwrite(fh, bytes(page[: max(0, min(PAGE, f.size - n * PAGE))]), n * PAGE)
                os.ftruncate(fh, f.size)
            return 0

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        # -- the namespace: durable at once -------------------------------------------------
        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._p(path))]

        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self._p(path), mode)
            self._owned(path)
            return 0

        def rmdir(self, path: str) -> int:
            os.rmdir(self._p(path))
            return 0

        def unlink(self, path: str) -> int:
            os.unlink(self._p(path))
            with self.mu:
                self.files.pop(path, None)
            return 0

        def rename(self, old: str, new: str) -> int:
            os.rename(self._p(old), self._p(new))
            with self.mu:
                self.files.pop(new, None)
                for p in [p for p in self.files if p == old or p.startswith(old + "/")]:
                    self.files[new + p[len(old) :]] = self.files.pop(p)
            return 0

        def link(self, target: str, source: str) -> int:
            os.link(self._p(source), self._p(target))
            return 0

        def symlink(self, target: str, source: str) -> int:
            os.symlink(source, self._p(target))
            self._owned(target)
            return 0

        def readlink(self, path: str) -> str:
            return os.readlink(self._p(path))

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self._p(path), mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            os.lchown(self._p(path), uid, gid)
            return 0

        def utimens(self, path: str, times: Any = None) -> int:
            os.utime(self._p(path), ns=times) if times else os.utime(self._p(path))
            return 0

        def statfs(self, path: str) -> dict[str, Any]:
            st = os.statvfs(self._p(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            return {
                k: getattr(st, k) for k in (*keys, "f_files", "f_flag", "f_frsize", "f_namemax")
            }

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            return 0

        def access(self, path: str, amode: int) -> int:
            if not os.access(self._p(path), os.F_OK):
                raise fuse.FuseOSError(errno.ENOENT)
            return 0

    return SyncFS


def main() -> None:
    backing, mountpoint = sys.argv[1], sys.argv[2]
    import mfusepy as fuse

    ops = _operations()(os.path.realpath(backing))

    def control() -> None:  # the harness's commands, one per line, until it closes our stdin
        for line in sys.stdin:
            if line.strip() == "lose":
                pages, files = ops.lose()
                print(f"lost {pages} {files}", flush=True)
            elif line.strip() == "sync":
                print(f"synced {ops.sync_all()}", flush=True)

    def ready() -> None:  # mounted once the kernel lists it: say so, then serve commands
        for _ in range(int(MOUNT_TIMEOUT_S / 0.01)):
            if os.path.ismount(mountpoint):
                print("ready", flush=True)
                control()
                return
            time.sleep(0.01)

    threading.Thread(target=ready, daemon=True).start()
    fuse.FUSE(
        ops,
        mountpoint,
        foreground=True,
        allow_other=True,  # the server runs as its own user (postgres), the daemon as root
        default_permissions=True,  # the kernel checks modes, as on a disk
        auto_unmount=True,  # a daemon that dies takes its mount with it
        fsname=FSNAME,
        attr_timeout=0,  # sizes change when unsynced pages are lost: never cache them
        entry_timeout=0,
        negative_timeout=0,
    )


# -- the harness's side ------------------------------------------------------------------------


class Mount:
    """One node's data directory on the daemon: started by ``mount``, ended by ``unmount``."""

    def __init__(self, node: Node, proc: subprocess.Popen) -> None:
        self.node, self.proc = node, proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lose(self) -> dict[str, int]:
        """Drop every page not yet fsynced (the node is down): what was lost."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("lose\n")
        self.proc.stdin.flush()
        words = self.proc.stdout.readline().split()
        if len(words) != 3 or words[0] != "lost":
            raise ServerStartError(f"syncfs of {self.node.name} did not answer: {words}")
        return {"pages": int(words[1]), "files": int(words[2])}

    def sync(self) -> None:
        """Make everything written so far durable (what the harness prepared: initdb's copy)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("sync\n")
        self.proc.stdin.flush()
        if not self.proc.stdout.readline().startswith("synced"):
            raise ServerStartError(f"syncfs of {self.node.name} did not sync")

    def unmount(self) -> None:
        """Unmount (the servers on it have ended) and end the daemon, by its pid. Idempotent."""
        where = str(self.node.data_dir)
        if os.path.ismount(where):
            done = subprocess.run(
                [_fusermount(), "-u", where], capture_output=True, timeout=15, check=False
            )
            if done.returncode != 0:  # still busy: detach it now, it goes when released
                subprocess.run(["umount", "-l", where], capture_output=True, timeout=15)
        with contextlib.suppress(Exception):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        # The synced data back where the runtime keeps (or removes) a node's data.
        backing = self.node.dir / "data.synced"
        if backing.exists() and not os.path.ismount(where):
            with contextlib.suppress(OSError):
                self.node.data_dir.rmdir()  # the empty mount point
                os.rename(backing, self.node.data_dir)


_mounts: dict[str, Mount] = {}  # node dir -> its mount, in this process


def _fusermount() -> str:
    found = shutil.which("fusermount3") or shutil.which("fusermount3", path="/usr/bin:/bin")
    if found is None:
        raise ServerStartError("fusermount3 not found: apt-get install -y fuse3")
    return found


def available() -> tuple[bool, str]:
    """Can this process mount the filesystem? (yes, or why not)"""
    if not os.path.exists("/dev/fuse"):
        return False, "no /dev/fuse"
    if os.geteuid() != 0:
        return False, "not root (a mount other users' servers can use needs root)"
    if (
        shutil.which("fusermount3") is None
        and shutil.which("fusermount3", path="/usr/bin:/bin") is None
    ):
        return False, "fusermount3 not found: apt-get install -y fuse3"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return False, f"mfusepy does not load: {e}"
    return True, "ok"


def wipe(node: Node) -> None:
    """A fresh start: unmount, and remove the node's data, synced or not."""
    unmount(node)
    shutil.rmtree(node.dir / "data.synced", ignore_errors=True)
    if node.data_dir.exists():
        shutil.rmtree(node.data_dir)


def mount(node: Node, started: Any = None) -> Mount:
    """The node's data dir on the filesystem, its synced data kept in ``dir/data.synced`` (moved
    back to the data dir at unmount, where the runtime keeps or removes it). What the
    kind prepared there before the first mount (initdb's copy) moves to the backing directory
    as it is, durable, without a copy through the filesystem. ``started(pid)`` records the
    daemon's pid with the run's guard."""
    m = _mounts.get(str(node.dir))
    if m is not None and m.proc.poll() is None and os.path.ismount(node.data_dir):
        return m
    if m is not None:  # its daemon died: start another on the same backing directory
        unmount(node)
    backing = node.dir / "data.synced"
    if not backing.exists():
        if node.data_dir.exists():
            os.rename(node.data_dir, backing)
        else:
            backing.mkdir(mode=0o700)
    node.data_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.runtime.syncfs", str(backing), str(node.data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(node.dir / "syncfs.log", "ab"),
        text=True,
        start_new_session=True,
        preexec_fn=functools.partial(die_with_parent, os.getpid()),  # auto_unmount then
    )
    if started is not None:
        started(proc.pid)
    m = _mounts[str(node.dir)] = Mount(node, proc)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # "ready", or "" when the daemon died
    if line != "ready":
        m.unmount()
        tail = (node.dir / "syncfs.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise ServerStartError(
            f"syncfs for {node.name} did not mount: {tail[0] if tail else 'no output'}"
        )
    return m


def lose(node: Node) -> dict[str, int] | None:
    """Drop what the node's data dir never fsynced (None: it is not on the filesystem)."""
    m = _mounts.get(str(node.dir))
    return m.lose() if m is not None else None


def sync(node: Node) -> None:
    m = _mounts.get(str(node.dir))
    if m is not None:
        m.sync()


def unmount(node: Node) -> None:
    m = _mounts.pop(str(node.dir), None)
    if m is not None:
        m.unmount()


def mounts() -> list[str]:
    """Mount points of this filesystem left in this mount namespace (the doctor's leftovers)."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            head, _, tail = line.partition(" - ")
            if tail.split(" ")[1:2] == [FSNAME]:
                out.append(head.split(" ")[4].replace("\\040", " "))
    return out


if __name__ == "__main__":
    main()
