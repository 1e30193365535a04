"""Child processes die with the harness, even when it is SIGKILLed and cannot tear down.

``PR_SET_PDEATHSIG`` with SIGKILL makes the kernel kill the child when its parent dies; SIGKILL
also ends a child that is stopped (SIGSTOP, the client-pause nemesis), which would ignore any
other signal. The parent may die between fork and the prctl call: the child then already has a
new parent, sees it, and exits at once.

A Ctrl-C must not land between a child's start and the record of its pid either: teardown ends
children by the pids it recorded, and a child whose pid was lost would outlive the run
(``pid_recorded``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> None:
    """Call in the child right after fork; ``parent_pid`` is the forking process's pid (taken
    before the fork). Note the kernel watches the parent *thread* that forked."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)


@contextlib.contextmanager
def pid_recorded() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block (start a child, record its pid) and deliver them
    after it, to the handlers that were there: an interrupt inside ``Popen`` (which waits for
    the child's exec) would otherwise leave a child nobody knows the pid of. Handlers run in
    the main thread only, so elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    # A handler set outside Python (getsignal: None) cannot be put back: it is left alone.
    sigs = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if held:
            signal.raise_signal(held[0])  # as if it arrived now: the old handler decides


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root``, parents before children (read from /proc).

    A server's children may sit in sessions of their own (PostgreSQL's backends call setsid),
    so signalling the server's process group does not reach them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(0), []):
            if c not in found:
                found.append(c)
                todo.append(c)
    return found
