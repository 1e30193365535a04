"""A private network namespace for a run.

As root on Linux the harness enters a fresh network namespace (``unshare(CLONE_NEWNET)``) for
the length of a run and brings ``lo`` up. Every server, proxy and client started inside lives
there; iptables rules made inside die with it, and nothing on the host is touched. On leaving,
the thread returns to the namespace it came from (``setns``), and the private one disappears as
soon as its last process has ended.

Namespaces are per thread: enter from the thread that then starts the servers and workers.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"


def tool(name: str) -> str:
    """A system tool (ip, iptables) on PATH or in the usual sbin directories."""
    found = shutil.which(name) or shutil.which(name, path=SYSTEM_PATH)
    if found is None:
        raise OSError(f"{name} not found: apt-get install -y iproute2 iptables")
    return found


def available() -> tuple[bool, str]:
    """Can this process make private namespaces? (yes, or why not)"""
    if not os.path.exists("/proc/self/ns/net"):
        return False, "not Linux (no /proc/self/ns/net)"
    if os.geteuid() != 0:
        return False, "not root: network namespaces and iptables need root"
    return True, "root on Linux"


@contextmanager
def private_netns() -> Iterator[None]:
    ok, why = available()
    if not ok:
        raise OSError(why)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"unshare(CLONE_NEWNET) failed: {os.strerror(e)}")
        try:
            subprocess.run(
                [tool("ip"), "link", "set", "lo", "up"], check=True, capture_output=True, timeout=10
            )
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns back to the host namespace failed: {os.strerror(e)}")
    finally:
        os.close(home)


def current_id() -> str:
    return os.readlink("/proc/thread-self/ns/net")


@contextmanager
def joined(name: str) -> Iterator[None]:
    """Enter the named namespace ``/run/netns/NAME`` (made by ``ip netns add``) for the block,
    then return this thread to the one it came from."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns into namespace {name} failed: {os.strerror(e)}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns back to the host namespace failed: {os.strerror(e)}")
    finally:
        os.close(home)
