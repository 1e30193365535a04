"""The clock shim: an LD_PRELOAD library that lets the clock nemesis move a server's wall clock.

``shim.c`` shifts CLOCK_REALTIME (clock_gettime, gettimeofday, time, timespec_get) by an offset
it reads, on every call, from ``<node dir>/clock-offset``: 8 bytes, a signed nanosecond count in
native byte order, mapped shared by the server. Writing that file in place moves the clock of the
running server; monotonic clocks are never touched. Programs that bypass libc's clock functions
(Go binaries such as etcd, static binaries) are not affected.

The offset file must only ever be written in place (never truncated or replaced by rename):
a server maps it, and a truncated mapping would SIGBUS, a replaced one would go stale.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from backends.errors import LockHarnessError

SOURCE = Path(__file__).with_name("shim.c")
OFFSET_FILE = "clock-offset"
ENV_FILE = "LOCKHARNESS_CLOCK_FILE"
_SIZE = ctypes.sizeof(ctypes.c_int64)
_NS = 1_000_000_000
# Offsets beyond this make no sense for a test and risk time_t overflow in the server.
MAX_OFFSET_S = 10 * 365 * 86400


class ClockShimError(LockHarnessError, RuntimeError):
    """The shim could not be built or the offset file is unusable; the message is one line."""


def default_cache_dir() -> Path:
    """The venv when running in one (readable by the users servers may run as), else ~/.cache."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "var" / "lockharness"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lockharness"


def build_shim(cache_dir: Path | None = None) -> Path:
    """Compile ``shim.c`` once per source version; return the path of the shared object."""
    try:
        source = SOURCE.read_bytes()
    except OSError as e:
        raise ClockShimError(f"clock shim source missing: {SOURCE} ({e.strerror})") from None
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"clockshim-{digest}.so"
    if target.is_file():
        return target
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ClockShimError(
            "gcc not found: the clock shim is compiled from C at setup (apt-get install -y gcc)"
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClockShimError(f"cannot create clock shim cache {cache}: {e.strerror}") from None
    # Build beside the target, then rename: concurrent builders never see a partial file.
    fd, tmp = tempfile.mkstemp(prefix=".clockshim-", suffix=".so", dir=cache)
    os.close(fd)
    try:
        argv = [gcc, "-O2", "-Wall", "-shared", "-fPIC", "-o", tmp, str(SOURCE)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr)
            raise ClockShimError(f"gcc failed to compile the clock shim {SOURCE}: {first.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def offset_path(node_dir: Path) -> Path:
    return Path(node_dir) / OFFSET_FILE


def shim_env(node_dir: Path, cache_dir: Path | None = None) -> dict[str, str]:
    """Environment that runs a server under the shim, reading ``node_dir/clock-offset``.

    Creates the offset file at 0 when missing; an existing file keeps its offset, so a node
    restarted during a clock fault comes back on the same skewed clock, as a real machine would.
    """
    so = build_shim(cache_dir)
    path = offset_path(node_dir)
    _ensure_file(path)
    return {"LD_PRELOAD": str(so), ENV_FILE: str(path)}


def _ensure_file(path: Path) -> None:
    # O_CREAT without O_TRUNC: never shrink a file a running server may have mapped.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ClockShimError(f"cannot create clock offset file {path}: {e.strerror}") from None
    try:
        if os.fstat(fd).st_size < _SIZE:
            os.pwrite(fd, bytes(_SIZE), 0)
    finally:
        os.close(fd)


def write_offset_ns(node_dir: Path, offset_ns: int) -> None:
    """Store the raw offset with one aligned 8-byte store into the shared mapping.

    A single machine store (not a pwrite, which the kernel may copy byte by byte) means a
    server reading concurrently sees either the old or the new offset, never a mix.
    """
    path = offset_path(node_dir)
    _ensure_file(path)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), _SIZE) as mm:
        cell = ctypes.c_int64.from_buffer(mm)
        cell.value = offset_ns
        del cell  # release the buffer export before the mapping closes


def read_offset_ns(node_dir: Path) -> int:
    """The raw offset the shim applies (0 when the file is missing or short, as in the shim)."""
    try:
        with open(offset_path(node_dir), "rb") as f:
            data = f.read(_SIZE)
    except FileNotFoundError:
        return 0
    if len(data) < _SIZE:
        return 0
    return int.from_bytes(data, sys.byteorder, signed=True)


def set_offset(node_dir: Path, seconds: float) -> None:
    """Move the wall clock of the server(s) reading ``node_dir`` to real time + ``seconds``."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or seconds != seconds
        or abs(seconds) > MAX_OFFSET_S
    ):
        raise ClockShimError(
            f"clock offset {seconds!r} rejected: give a number of seconds within "
            f"±{MAX_OFFSET_S} (10 years)"
        )
    write_offset_ns(node_dir, round(seconds * _NS))


def get_offset(node_dir: Path) -> float:
    """The current offset in seconds."""
    return read_offset_ns(node_dir) / _NS
