"""The history in columns: what ``harness check`` of a large history reads instead of one ``Op``
object per line.

One op is a row of numpy arrays (``index``, ``time``, ``process``, small integer codes for
``type``, ``f``, ``key`` and ``error`` into interned tables, the value as an int64 where it is
one); values that are not integers are kept aside by row. About 40 bytes an op instead of about
400, and the checkers (``checkers.colcheck``) sweep the arrays with numpy, pairing invocations
with completions once. ``Op`` objects are built only for the ops a result shows.

The columns are an optimisation, never a second reading of the format: ``read_columns`` returns
None for any history it cannot prove it reads exactly as ``checkers.history.read`` does
(a line that is not a plain well-formed op, unknown fields, duplicate or missing indexes, keys
that are not strings or integers, a completion whose key disagrees with its invocation's, a
process whose ops are out of time order, processes that interleave invocations), and the caller
then takes the object path. Decoding uses msgspec: typed JSON decoding of a block of lines at
a time, so memory stays that of the columns plus one block.
"""

from __future__ import annotations

import gc
import math
import mmap
import os
import pickle
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import msgspec
import numpy as np

from . import canonical
from .history import _BIG, NEMESIS, TYPES, Op, ReadResult, _big_float, read

INVOKE, OK, FAIL, INFO = range(4)
_TYPE_CODE = {t: i for i, t in enumerate(TYPES)}
# ``index`` and ``process`` are int32 (a history whose indexes or processes do not fit is read by
# the object reader); the nemesis's ops have ``process`` NEM, which no client's may be
NEM = np.iinfo(np.int32).min
_NEM = int(NEM)
_I32 = np.iinfo(np.int32).max
V_NONE, V_INT, V_OTHER = 0, 1, 2  # what ``value`` holds: null, an int64, a value kept aside
BLOCK = 1 << 24  # bytes decoded at a time (about 150,000 ops)
ROWS_AT_ONCE = 1 << 20  # rows a pass over all the columns takes at a time (``Columns.chunks``)
#: a history file at least this large is read by two readers at once (``_read_parallel``)
PARALLEL_BYTES = 1 << 26
# Peak memory of ``harness check`` of a lock history in columns: a base and so much per op
# (measured with bench/history_scale.py at 10^6 and 10^7 ops), for ``memory_note``.
BASE_BYTES = 70 * 10**6
BYTES_PER_OP = 72  # 151 MB at 1.13 x 10^6 ops, 884 MB at 1.13 x 10^7


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    index: int
    time: int
    process: int | str
    type: str
    f: str
    key: str | int | None = None
    value: Any = None
    error: str | None = None


_decode = msgspec.json.Decoder(list[_Line]).decode


class _Intern(dict):
    """value -> small code, first seen first; ``table`` lists the values by code."""

    def __init__(self) -> None:
        super().__init__()
        self.table: list[Any] = []

    def __missing__(self, v: Any) -> int:
        code = self[v] = len(self.table)
        self.table.append(v)
        return code


class Unusual(Exception):
    """A history the columns do not read exactly as the object reader: take the object path."""


@dataclass
class Columns:
    """A history's ops, one row each, in line order. ``keys``, ``fs`` and ``errors`` are the
    interned tables (code -> value; an error code of -1 is no error); ``others`` holds the values
    that are not int64 (row -> value)."""

    index: np.ndarray | None  # int32; None when each row's is ``index0`` + its row (``index_of``)
    time: np.ndarray
    process: np.ndarray  # int32, NEM for the nemesis
    type: np.ndarray  # int8 codes of TYPES
    f: np.ndarray  # int16 codes into fs
    key: np.ndarray  # int32 codes into keys
    vkind: np.ndarray  # int8: V_NONE, V_INT, V_OTHER
    vint: np.ndarray  # int64 value where vkind is V_INT
    error: np.ndarray  # int16 codes into errors, -1 for none
    fs: list[str]
    keys: list[Any]
    errors: list[str]
    others: dict[int, Any] = field(default_factory=dict)
    lines: int = 0
    index0: int = 0
    _order: np.ndarray | None = None
    _rank: np.ndarray | None = None
    proc_order: np.ndarray | None = None  # ``by_process``, kept until the pairing

    def __len__(self) -> int:
        return len(self.time)

    def index_of(self, rows: Any) -> Any:
        """The ``index`` of a row or an array of rows."""
        if self.index is None:
            return rows + self.index0 if isinstance(rows, np.ndarray) else int(rows) + self.index0
        return self.index[rows]

    def drop_plain_index(self) -> None:
        """Forget the index column when every row's index is the first's plus its row (the
        recorder's histories): 4 bytes an op."""
        ix = self.index
        if ix is not None and len(ix) and ix[-1] - ix[0] == len(ix) - 1:
            if np.all(ix[1:] > ix[:-1]):  # strictly increasing over that span: consecutive
                self.index0, self.index = int(ix[0]), None

    @property
    def order(self) -> np.ndarray:
        """Rows in (time, index) order: the checkers' sorted history (positions index it)."""
        if self._order is None:
            if len(self) and (self.index is None or np.all(self.index[1:] > self.index[:-1])):
                # index order is line order
                self._order = _small(np.argsort(self.time, kind="stable"))
            else:
                self._order = _small(np.lexsort((self.index, self.time)))
        return self._order

    @property
    def rank(self) -> np.ndarray:
        """Each row's position in ``order``."""
        if self._rank is None:
            n = len(self)
            self._rank = np.empty(n, dtype=index_dtype(n))
            self._rank[self.order] = np.arange(n, dtype=self._rank.dtype)
        return self._rank

    def by_process(self) -> np.ndarray:
        """Client rows grouped by process, each process's in line order (which ``_validate``
        proves is its time order)."""
        if self.proc_order is None:
            rows = _small(np.flatnonzero(self.process != NEM))
            self.proc_order = _small(rows[np.argsort(self.process[rows], kind="stable")])
        return self.proc_order

    def f_code(self, f: str) -> int:
        """The code of op kind ``f`` (-1 when no op has it)."""
        try:
            return self.fs.index(f)
        except ValueError:
            return -1

    def value(self, row: int) -> Any:
        k = self.vkind[row]
        if k == V_NONE:
            return None
        if k == V_INT:
            return int(self.vint[row])
        return self.others[int(row)]

    def op(self, row: int) -> Op:
        """The ``Op`` of one row, as the object reader makes it."""
        r = int(row)
        p = int(self.process[r])
        e = int(self.error[r])
        return Op(
            int(self.index_of(r)),
            int(self.time[r]),
            NEMESIS if p == NEM else p,
            TYPES[self.type[r]],
            self.fs[self.f[r]],
            self.keys[self.key[r]],
            self.value(r),
            None if e < 0 else self.errors[e],
        )

    def ops(self, rows: Any) -> list[Op]:
        """The ``Op`` of each row, built a block at a time from plain lists (indexing numpy
        arrays one element at a time costs ten times as much)."""
        rows = np.asarray(rows, dtype=np.int64)
        fs, keys, errors, others = self.fs, self.keys, self.errors, self.others
        return [
            Op(
                ix,
                t,
                NEMESIS if p == NEM else p,
                TYPES[ty],
                fs[f],
                keys[k],
                v if kind == V_INT else None if kind == V_NONE else others[r],
                None if e < 0 else errors[e],
            )
            for r, ix, t, p, ty, f, k, kind, v, e in zip(
                rows.tolist(),
                self.index_of(rows).tolist(),
                self.time[rows].tolist(),
                self.process[rows].tolist(),
                self.type[rows].tolist(),
                self.f[rows].tolist(),
                self.key[rows].tolist(),
                self.vkind[rows].tolist(),
                self.vint[rows].tolist(),
                self.error[rows].tolist(),
                strict=True,
            )
        ]

    def chunks(self) -> Iterator[slice]:
        """The rows ``ROWS_AT_ONCE`` at a time: a pass over a chunk needs no temporary the size
        of a column."""
        for a in range(0, len(self), ROWS_AT_ONCE):
            yield slice(a, a + ROWS_AT_ONCE)

    def client_span(self) -> tuple[int, int] | None:
        """The first and last time of a client op (None when there is none)."""
        lo = hi = None
        for sl in self.chunks():
            t = self.time[sl][self.process[sl] != NEM]
            if len(t):
                x, y = int(t.min()), int(t.max())
                lo, hi = (x, y) if lo is None else (min(lo, x), max(hi, y))
        return None if lo is None else (lo, hi)

    def fs_present(self) -> set[str]:
        return {self.fs[c] for c in np.unique(self.f)}

    def nemesis_rows(self) -> np.ndarray:
        return np.flatnonzero(self.process == NEM)


class OpsView(Sequence[Op]):
    """The ops of ``Columns`` as a read-only sequence in line order, an ``Op`` built per access:
    code that reads a history's ops one at a time (reports, third-party checkers) keeps working
    without the history ever being held as objects."""

    CHUNK = 1 << 16

    def __init__(self, cols: Columns, rows: np.ndarray | None = None) -> None:
        self.cols = cols
        self.rows = rows  # a subset or order of rows; None: all, in line order

    def __len__(self) -> int:
        return len(self.cols) if self.rows is None else len(self.rows)

    @overload
    def __getitem__(self, i: int) -> Op: ...
    @overload
    def __getitem__(self, i: slice) -> list[Op]: ...
    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            rows = np.arange(*i.indices(len(self)))
            return self.cols.ops(rows if self.rows is None else self.rows[rows])
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self.cols.op(i if self.rows is None else self.rows[i])

    def of_processes(self, lo: int, hi: int, procs: set[int]) -> list[Op]:
        """The ops at positions ``lo`` to ``hi`` (excluded) of these processes only: their
        ``Op`` built, the others' not looked at."""
        rows = np.arange(max(0, lo), min(hi, len(self)))
        if self.rows is not None:
            rows = self.rows[rows]
        keep = np.isin(self.cols.process[rows], np.fromiter(procs, np.int64, len(procs)))
        return self.cols.ops(rows[keep])

    def __iter__(self) -> Iterator[Op]:
        n = len(self)
        for lo in range(0, n, self.CHUNK):
            rows = np.arange(lo, min(n, lo + self.CHUNK))
            yield from self.cols.ops(rows if self.rows is None else self.rows[rows])


def read_columns(path: str | os.PathLike[str]) -> Columns | None:
    """The history file in columns, or None when only the object reader reads it exactly."""
    paused = gc.isenabled()
    gc.disable()  # blocks of structs hold no cycles: the cyclic GC would only rescan them
    try:
        return _read(path)
    except (
        Unusual,
        msgspec.DecodeError,
        msgspec.ValidationError,
        OverflowError,
        ValueError,
        KeyError,
    ):
        return None
    finally:
        if paused:
            gc.enable()


_DTYPES = {
    "index": np.int32,
    "time": np.int64,
    "process": np.int32,
    "type": np.int8,
    "f": np.int16,
    "key": np.int32,
    "vkind": np.int8,
    "vint": np.int64,
    "error": np.int16,
}


class _Builder:
    """The columns, allocated once for ``capacity`` rows and filled a block at a time (no
    concatenation: the peak is the columns and one block)."""

    def __init__(
        self, capacity: int, arrays: dict[str, np.ndarray] | None = None, offset: int = 0
    ) -> None:
        """``arrays``: where to write (views of shared columns, ``_read_parallel``), whose row 0
        is row ``offset`` of the history (the rows ``others`` is keyed by)."""
        self.arrays = arrays or {k: np.empty(capacity, dtype=d) for k, d in _DTYPES.items()}
        self.fs = _Intern()
        self.keys = _Intern()
        self.errors = _Intern()
        self.others: dict[int, Any] = {}
        self.rows = 0
        self.offset = offset

    def add_text(self, buf: bytes, size: int) -> int:
        """Add a block of lines (``buf``'s first ``size`` bytes, newline-separated, as
        ``_blocks`` makes them): those in the recorder's own shape parsed with numpy
        (``checkers.canonical``), the others decoded. Returns how many lines it had."""
        try:
            p = canonical.parse(buf, size)
        except canonical.Collision:
            p = None
        if p is None or not len(p.fast):
            text = buf[:size]
            self.add(_decode(_array_text(text.replace(b"\n", b","))))
            return text.count(b"\n") + 1 if p is None else p.lines
        base, n = self.rows, p.lines
        if base + n > len(self.arrays["index"]):
            raise Unusual("more lines than counted")
        cuts = zip(p.start[p.slow].tolist(), p.end[p.slow].tolist(), strict=True)
        slow = _decode(_array_text(b",".join(buf[a:b] for a, b in cuts))) if len(p.slow) else []
        if len(slow) != len(p.slow):  # a line holding two ops, separated by a comma
            raise Unusual("a line that is not one op")
        srows = p.slow.tolist()
        # the tables get their values in the order a line-by-line reading meets them
        fast_nokey = np.flatnonzero(~p.has_key)
        _intern_in_order(
            self.fs, [(p.f.first, p.f.table)], zip(srows, (x.f for x in slow), strict=True)
        )
        _intern_in_order(
            self.keys,
            ([(p.key.first, p.key.table)] if p.key else [])
            + ([(p.fast[fast_nokey[:1]], [None])] if len(fast_nokey) else []),
            zip(srows, (x.key for x in slow), strict=True),
        )
        _intern_in_order(
            self.errors,
            [(p.error.first, p.error.table)] if p.error else [],
            ((r, x.error) for r, x in zip(srows, slow, strict=True) if x.error is not None),
        )
        # the parser's indexes and processes are non-negative: only their top can overflow
        if len(p.fast) and (p.index.max() > _I32 or p.process.max() > _I32):
            raise Unusual("an index or process past 32 bits")
        A, at = self.arrays, base + p.fast
        A["index"][at] = p.index
        A["time"][at] = p.time
        A["process"][at] = p.process
        A["type"][at] = p.type
        A["f"][at] = _codes(p.f, self.fs, np.int16)
        key = np.full(len(p.fast), self.keys[None] if len(fast_nokey) else 0, dtype=np.int32)
        if p.key:
            key[p.has_key] = _codes(p.key, self.keys, np.int32)
        A["key"][at] = key
        A["vkind"][at] = np.where(p.has_value, V_INT, V_NONE).astype(np.int8)
        A["vint"][at] = p.value
        error = np.full(len(p.fast), -1, dtype=np.int16)
        if p.error:
            error[p.has_error] = _codes(p.error, self.errors, np.int16)
        A["error"][at] = error
        if slow:
            self.add(slow, base + p.slow)
        self.rows = base + n
        self._check_tables()
        return n

    def add(self, lines: list[_Line], at: np.ndarray | None = None) -> None:
        """Add decoded lines: the next rows, or rows ``at`` (ascending) of a block being added
        (``add_text`` counts its rows itself)."""
        n = len(lines)
        if not n:
            return
        base = self.rows
        if at is None and base + n > len(self.arrays["index"]):
            raise Unusual("more lines than counted")
        A = self.arrays
        sl: slice | np.ndarray = slice(base, base + n) if at is None else at
        rows = range(base, base + n) if at is None else at.tolist()
        A["index"][sl] = _ints([x.index for x in lines], np.int32, n)
        A["time"][sl] = _ints([x.time for x in lines], np.int64, n)
        procs = [x.process for x in lines]
        try:
            A["process"][sl] = got = _ints(procs, np.int32, n)
            if np.any(got == NEM):
                raise Unusual("a process at the nemesis's code")
        except (TypeError, ValueError):  # the nemesis's ops among them
            nem = procs.count(NEMESIS)
            ints = [p if type(p) is int else _NEM for p in procs]
            if ints.count(_NEM) != nem:  # another string, or an integer at the nemesis's code
                raise Unusual("a process that is neither an integer nor the nemesis") from None
            A["process"][sl] = _ints(ints, np.int32, n)
        A["type"][sl] = _ints([_TYPE_CODE[x.type] for x in lines], np.int8, n)
        fs, keys = self.fs, self.keys
        A["f"][sl] = _ints([fs[x.f] for x in lines], np.int16, n)
        A["key"][sl] = _ints([keys[x.key] for x in lines], np.int32, n)
        vals = [x.value for x in lines]
        vint = None
        if set(map(type, vals)) == {int}:  # all integers (fences): no bool, float or null
            try:
                vint = _ints(vals, np.int64, n)
                kinds = np.full(n, V_INT, dtype=np.int8)
            except OverflowError:
                pass
        if vint is None:
            vint, kinds = self._values(vals, rows)
        A["vkind"][sl] = kinds
        A["vint"][sl] = vint
        errs = [x.error for x in lines]
        if errs.count(None) == n:
            A["error"][sl] = np.full(n, -1, dtype=np.int16)
        else:
            A["error"][sl] = np.array(
                [-1 if e is None else self.errors[e] for e in errs], dtype=np.int16
            )
        self._check_tables()
        if at is None:
            self.rows += n

    def _check_tables(self) -> None:
        if len(self.fs.table) > 30000 or len(self.errors.table) > 30000:
            raise Unusual("too many distinct kinds or errors for their codes")

    def _values(self, vals: list[Any], rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        n = len(vals)
        kinds = bytearray(n)
        ints = [0] * n
        others = self.others
        for i, v in enumerate(vals):
            if v is None:
                continue
            if type(v) is int and -(2**63) <= v < 2**63:
                kinds[i] = V_INT
                ints[i] = v
                continue
            if type(v) is float and abs(v) >= _BIG or _big_float(v):
                raise Unusual("an integer past 64 bits")
            kinds[i] = V_OTHER
            others[self.offset + rows[i]] = v
        return np.array(ints, dtype=np.int64), np.frombuffer(bytes(kinds), dtype=np.int8)

    def build(self, lines: int) -> Columns:
        A = {k: v[: self.rows] for k, v in self.arrays.items()}
        return Columns(
            A["index"],
            A["time"],
            A["process"],
            A["type"],
            A["f"],
            A["key"],
            A["vkind"],
            A["vint"],
            A["error"],
            self.fs.table,
            self.keys.table,
            self.errors.table,
            self.others,
            lines,
        )


def _intern_in_order(
    intern: _Intern,
    tables: list[tuple[np.ndarray, list[Any]]],
    slow: Iterable[tuple[int, Any]],
) -> None:
    """Intern a block's values in the order of the lines that first have them: ``tables`` are
    (first line, value) columns of the fast lines', ``slow`` the decoded lines' (line, value)."""
    met = [pair for first, table in tables for pair in zip(first.tolist(), table, strict=True)]
    met.extend(slow)
    met.sort(key=lambda pair: pair[0])
    for _, v in met:
        intern[v]  # noqa: B018 (interning is the point)


def _array_text(lines: bytes) -> bytes:
    """Comma-separated JSON lines as one JSON array, for the decoder."""
    # escapes that the two decoders might treat differently (lone surrogates)
    if b"\\ud" in lines or b"\\uD" in lines:
        raise Unusual("surrogate escapes")
    return b"[" + lines + b"]"


def _codes(strings: canonical.Strings, codes: dict[Any, int], dtype: Any) -> np.ndarray:
    """Fast lines' codes of one field in a table (KeyError: a value it does not have)."""
    return np.array([codes[v] for v in strings.table], dtype=dtype)[strings.codes]


def index_dtype(n: int) -> type[np.signedinteger]:
    """The integer type for positions, rows and counts below ``n``: int32 where they fit, half the
    memory of int64."""
    return np.int32 if n < 2**31 - 1 else np.int64


def _small(rows: np.ndarray) -> np.ndarray:
    """Row numbers as int32 where they fit: half the memory of the orders the checkers keep."""
    return rows.astype(index_dtype(len(rows)), copy=False)


def _ints(xs: list[Any], dtype: Any, n: int) -> np.ndarray:
    """A list of ints as an array (``fromiter`` is the fastest way in; it refuses non-ints)."""
    return np.fromiter(xs, dtype=dtype, count=n)


def _chunks(
    path: str | os.PathLike[str], start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """The file's bytes ``start`` to ``end`` (None: its end), ``BLOCK`` at a time."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = math.inf if end is None else end - start
        while left > 0 and (buf := fh.read(int(min(BLOCK, left)))):
            left -= len(buf)
            yield buf


def _blocks(
    path: str | os.PathLike[str], start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int]]:
    """Whole lines of the file (of its bytes ``start`` to ``end``, both at line starts), a block
    at a time: a buffer whose first ``size`` bytes are the block's lines, followed by a newline
    or the end of the file, and by at least ``canonical.PAD`` more bytes (what the parser reads
    past a line it drops)."""
    rest = b""
    pad = bytes(canonical.PAD)
    for chunk in _chunks(path, start, end):
        buf = b"".join((rest, chunk, pad))
        cut = buf.rfind(b"\n", 0, len(buf) - len(pad))
        if cut < 0:
            rest = buf[: -len(pad)]
            continue
        rest = buf[cut + 1 : -len(pad)]
        yield buf, cut
    if rest.strip():
        yield rest + pad, len(rest)
    elif rest:
        raise Unusual("a last line of blanks")


def _newlines(path: str | os.PathLike[str], start: int = 0, end: int | None = None) -> int:
    """How many line ends the file has from byte ``start`` to ``end``."""
    return sum(chunk.count(b"\n") for chunk in _chunks(path, start, end))


def _fill(b: _Builder, path: str | os.PathLike[str], start: int = 0, end: int | None = None) -> int:
    """Decode the lines of bytes ``start`` to ``end`` into ``b``: how many lines there were."""
    return sum(b.add_text(buf, size) for buf, size in _blocks(path, start, end))


def _read(path: str | os.PathLike[str]) -> Columns:
    size = os.path.getsize(path)
    if size >= PARALLEL_BYTES and _two_readers_possible():
        cols = _read_parallel(path, size)
    else:
        capacity = _newlines(path) + 1  # counted first, so the columns are allocated once
        b = _Builder(capacity)
        lines = _fill(b, path)
        cols = b.build(lines)
        if len(cols) != lines:
            raise Unusual("blank lines")
    _validate(cols)
    cols.drop_plain_index()
    return cols


def _two_readers_possible() -> bool:
    """A second reader is a forked process: only with two CPUs to use, and only from a process
    with no other thread (a fork copies none of them, nor whatever lock one of them held)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return hasattr(os, "fork") and (cpus or 1) >= 2 and threading.active_count() == 1


def _shared(capacity: int) -> dict[str, np.ndarray]:
    """Columns of ``capacity`` rows in anonymous shared mappings, which a forked reader writes
    into and the caller reads (each array keeps its mapping alive)."""
    # a mapping a column: one the columns no longer need (``drop_plain_index``) is unmapped
    # once its array is dropped
    arrays = {
        k: np.frombuffer(mmap.mmap(-1, max(8, capacity * np.dtype(d).itemsize)), d, capacity)
        for k, d in _DTYPES.items()
    }
    return arrays


def _read_parallel(path: str | os.PathLike[str], size: int) -> Columns:
    """Two readers, one a forked child, each decoding half the file's lines into its rows of
    shared columns; the child's interned codes are mapped onto the parent's afterwards, so the
    tables come out as one reader would have made them (the first half's values first, then the
    second half's new ones in the order it met them)."""
    with open(path, "rb") as fh:  # the second half starts at the line after the middle
        fh.seek(size // 2)
        tail = fh.read(BLOCK)
    cut = tail.find(b"\n")
    if cut < 0:
        raise Unusual("a line longer than a block")
    mid = size // 2 + cut + 1
    first = _newlines(path, 0, mid)
    capacity = first + _newlines(path, mid) + 1
    arrays = _shared(capacity)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the second half
        os.close(r)
        try:
            b = _Builder(capacity - first, {k: a[first:] for k, a in arrays.items()}, first)
            n = _fill(b, path, mid)
            got: Any = (n, b.rows, b.fs.table, b.keys.table, b.errors.table, b.others)
        except BaseException as e:  # any failure: the parent takes the object path
            got = f"{type(e).__name__}: {e}"
        with os.fdopen(w, "wb") as out:
            pickle.dump(got, out)
        os._exit(0)
    os.close(w)
    try:
        b = _Builder(first, {k: a[:first] for k, a in arrays.items()})
        n1 = _fill(b, path, 0, mid)
    finally:
        with os.fdopen(r, "rb") as src:
            raw = src.read()
        os.waitpid(pid, 0)
    got = pickle.loads(raw) if raw else "the second reader died"
    if isinstance(got, str):
        raise Unusual(f"second reader: {got}")
    n2, rows2, fs2, keys2, errors2, others2 = got
    if b.rows != n1 or n1 != first or rows2 != n2:
        raise Unusual("blank lines")
    part = slice(first, first + rows2)
    for col, intern, table in (
        ("f", b.fs, fs2),
        ("key", b.keys, keys2),
        ("error", b.errors, errors2),
    ):
        if not table:
            continue
        codes = arrays[col][part]
        remap = np.array([intern[v] for v in table], dtype=codes.dtype)
        codes[...] = np.where(codes >= 0, remap[np.maximum(codes, 0)], codes)
    if len(b.fs.table) > 30000 or len(b.errors.table) > 30000:
        raise Unusual("too many distinct kinds or errors for their codes")
    b.others.update(others2)
    b.arrays = arrays
    b.rows = first + rows2
    cols = b.build(n1 + n2)
    return cols


def _validate(c: Columns) -> None:
    """What the object reader checks or repairs line by line, proven absent here at once."""
    n = len(c)
    if n == 0:
        raise Unusual("empty")
    if c.index.min() < 0 or c.time.min() < 0:
        raise Unusual("negative index or time")
    if not np.all(c.index[1:] > c.index[:-1]):
        s = np.sort(c.index)
        if np.any(s[1:] == s[:-1]):
            raise Unusual("duplicate indexes")
    if any(type(k) is int and not -(2**62) < k < 2**62 for k in c.keys):
        raise Unusual("huge integer keys")
    # Per process, its ops in line order must be its ops in (time, index) order, so that the
    # reader's pairing (line order) and the checkers' (sorted) agree, and they must alternate
    # invocation, completion of the same f: anything else is handled by the object path's rules.
    rank = c.rank
    g = c.by_process()
    p = c.process[g]
    same = p[1:] == p[:-1]
    del p
    rg = rank[g]
    if np.any(same & (rg[1:] < rg[:-1])):
        raise Unusual("a process's ops out of time order")
    del rg
    inv = c.type[g] == INVOKE
    if len(g) and (not inv[0] or np.any(~same & ~inv[1:])):
        raise Unusual("a completion with no invocation")
    if np.any(same & (inv[1:] == inv[:-1])):
        raise Unusual("two invocations or two completions in a row")
    nxt = same & ~inv[1:]  # a completion following an op of its own process
    del same, inv
    x = c.f[g]
    if np.any(nxt & (x[1:] != x[:-1])):
        raise Unusual("a completion of another f")
    x = c.key[g]
    if np.any(nxt & (x[1:] != x[:-1])):
        raise Unusual("a completion whose key differs from its invocation's")


# --- what ``harness check`` asks of a history besides its checkers, without a pass over objects


def read_history(path: str | os.PathLike[str]) -> ReadResult:
    """``checkers.history.read``, its ops in columns (an ``OpsView``) when ``read_columns`` can
    read the file exactly."""
    cols = read_columns(path)
    if cols is None:
        return read(path)
    return ReadResult(ops=OpsView(cols), lines=cols.lines)  # type: ignore[arg-type]


def nemesis_ops(ops: Sequence[Op]) -> Sequence[Op]:
    """The nemesis's ops among ``ops``, in their order (all of them when not in columns: the
    callers skip the others)."""
    if isinstance(ops, OpsView) and ops.rows is None:
        return OpsView(ops.cols, ops.cols.nemesis_rows())
    return ops


def max_time(ops: Sequence[Op]) -> int:
    """The latest op's time (0 for none)."""
    if isinstance(ops, OpsView) and ops.rows is None:
        return int(ops.cols.time.max()) if len(ops) else 0
    return max((op.time for op in ops), default=0)


def present_fs(ops: Sequence[Op]) -> set[str]:
    """The op kinds (``f``) in ``ops``."""
    if isinstance(ops, OpsView) and ops.rows is None:
        return ops.cols.fs_present()
    return {op.f for op in ops}


LARGE = 100 * 10**6  # bytes of history from which ``harness check`` says what it will need


def memory_note(path: str | os.PathLike[str]) -> str | None:
    """One line saying how much memory checking this history will take, for a large one (its
    ops estimated from the length of its first lines); None for a small one."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError:
        return None
    if size < LARGE:
        return None
    ops = size * max(1, head.count(b"\n")) // max(1, len(head))
    need = BASE_BYTES + ops * BYTES_PER_OP
    return (
        f"{os.fspath(path)}: {size / 1e9:.2f} GB, about {ops / 1e6:.1f} million ops: checking it "
        f"needs about {need / 1e9:.1f} GB of memory"
    )
