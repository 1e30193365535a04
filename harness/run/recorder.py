"""Recording ops from many worker processes (and many client threads in each) into one history.

Clients write one JSON line per op to a shared pipe. A ``write()`` of at most PIPE_BUF bytes to a
pipe is atomic, between processes and between the threads of one, so lines never interleave
and no lock is needed (a lock held by a worker that the nemesis SIGSTOPs would freeze every
client). Each client, thread or process, has a ``Recorder`` of its own: its buffer is never
shared. The harness process reads the pipe, gives each
op its ``index`` in arrival order and appends it to ``history.jsonl``, flushed as it arrives.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

MAX_ERROR = 400  # keeps every line far below PIPE_BUF
BATCH_PAUSE = 0.005  # s the history pump sleeps after each batch
PIPE_SIZE = 1 << 20  # pipe capacity asked for: ~5,000 ops of slack while the pump sleeps
PIPE_BUF = select.PIPE_BUF  # writes up to this size to a pipe are atomic (4096 on Linux)


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class Recorder:
    """The writing end, used by workers and the nemesis.

    ``buffered``: ops are kept until ``flush()`` and then written in one atomic write. A client
    flushes before every call to the system under test and before every sleep, so nothing the
    servers could have seen goes unrecorded, while the ops of one local step (acquire ok, the
    protected write, release invoke) cost one system call instead of four.

    ``before_first``: called once, before the first op is recorded or the clock is first read:
    a client made before the run's clock starts waits there at the start gate, which then sets
    ``t0``.
    """

    def __init__(
        self,
        fd: int,
        t0_ns: int,
        buffered: bool = False,
        before_first: Callable[[], None] | None = None,
    ) -> None:
        self.fd = fd
        self.t0 = t0_ns
        self.buffered = buffered
        self.before_first = before_first
        self._buf: list[bytes] = []
        self._size = 0

    def now(self) -> int:
        """Ns on the run's clock; a client that asks before its first op passes the start gate
        first (before it, ``t0`` is not yet the run's)."""
        if self.before_first is not None:
            first, self.before_first = self.before_first, None
            first()
        return time.monotonic_ns() - self.t0

    def record(
        self,
        process: int | str,
        type_: str,
        f: str,
        key: Any = None,
        value: Any = None,
        error: str | None = None,
    ) -> None:
        d: dict[str, Any] = {"time": self.now(), "process": process, "type": type_, "f": f}
        if key is not None:
            d["key"] = key
        if value is not None:
            d["value"] = value
        if error is not None:
            d["error"] = error[:MAX_ERROR]
        line = (_encode(d) + "\n").encode()
        if not self.buffered:
            os.write(self.fd, line)
            return
        if self._size + len(line) > PIPE_BUF:
            self.flush()
        self._buf.append(line)
        self._size += len(line)

    def flush(self) -> None:
        if self._buf:
            os.write(self.fd, b"".join(self._buf))  # <= PIPE_BUF: atomic
            self._buf.clear()
            self._size = 0


def op_pattern(type_: str, f: str) -> bytes:
    """The bytes by which a recorded line is an op of this type (and ``f``; any when empty):
    ``Recorder.record`` writes ``type`` then ``f``, so counting needs no JSON parse."""
    if not f:
        return f'"type":"{type_}"'.encode()
    return _encode({"type": type_, "f": f})[1:-1].encode()


class HistoryPump(threading.Thread):
    """Drains the pipe into the history file until every writer has closed it (EOF), counting
    the ops that match ``progress`` (a workload's ``(type, f)``) for the progress line."""

    def __init__(self, fd: int, writer: HistoryWriter, progress: tuple[str, str] = ("ok", "")):
        super().__init__(name="history-pump", daemon=True)
        self.fd = fd
        self.writer = writer
        self.progress = 0
        self.ops = 0
        self._pattern = op_pattern(*progress)
        self._stop_at: float | None = None

    def run(self) -> None:
        buf = b""
        while True:
            if self._stop_at is not None and time.monotonic() > self._stop_at:
                break  # a writer we could not close still holds the pipe
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            self.writer.append_lines(lines)
            pattern = self._pattern
            self.progress += sum(pattern in ln for ln in lines)
            self.ops = self.writer.count
            # Let ops gather in the pipe: one wake-up per batch, not per op, leaves the CPU
            # to the clients and servers being measured.
            time.sleep(BATCH_PAUSE)
        os.close(self.fd)

    def finish(self, timeout: float) -> None:
        self._stop_at = time.monotonic() + timeout
        self.join(timeout + 1)


def make_pipe() -> tuple[int, int]:
    """The ops pipe, enlarged so that writers do not block while the pump sleeps."""
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size for non-root: the default 64 KiB still works
    return r, w


F_SETPIPE_SZ = 1031


class HistoryWriter:
    """Appends ops to ``history.jsonl``, assigning ``index`` in arrival order, flushed per
    batch as they arrive. With ``keep`` it also keeps the lines written (``lines``); a run does
    not (its analysis reads the file back, so a long run's history never sits in memory)."""

    def __init__(self, path: str | os.PathLike[str], keep: bool = False) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] = open(self.path, "ab")
        self.count = 0
        self.lines: list[bytes] | None = [] if keep else None

    def append_lines(self, lines: list[bytes]) -> None:
        """Append ops already encoded as JSON objects without an ``index``: each gets the
        next index, in order, and the batch is flushed once."""
        n = self.count
        out = [b'{"index":%d,%s\n' % (n + i, raw[1:]) for i, raw in enumerate(lines)]
        self.count = n + len(out)
        self._fh.write(b"".join(out))
        self._fh.flush()
        if self.lines is not None:
            self.lines.extend(out)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
