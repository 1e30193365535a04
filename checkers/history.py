"""The history: one op per line of ``history.jsonl``, Jepsen's model.

Fields: ``index``, ``time`` (ns since run start, ``time.monotonic_ns()``), ``process`` (int, or
``"nemesis"``), ``type`` (invoke | ok | fail | info), ``f``, ``key``, ``value``, ``error``.
``ok`` took effect, ``fail`` certainly did not, ``info`` is unknown.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from backends.errors import LockHarnessError

# The files of a run directory, defined once here at the bottom of the import graph: the
# harness writes them (for the user and ``harness check``), reports and ``harness check`` read
# them.
CONFIG, HISTORY, RESULTS, REPORT = "config.json", "history.jsonl", "results.json", "report.html"

TYPES = ("invoke", "ok", "fail", "info")
FIELDS = ("index", "time", "process", "type", "f", "key", "value", "error")
NEMESIS = "nemesis"  # the process of the nemesis's ops


def nemesis_label(nemesis: Any) -> str:
    """How a run's nemesis list is named everywhere (store paths, reports, tables, JUnit):
    ``kill+pause``, or ``none``."""
    if isinstance(nemesis, list | tuple):
        return "+".join(map(str, nemesis)) or "none"
    return str(nemesis) if nemesis else "none"


class Exact:
    """A JSON value compared by JSON identity, where Python's equality would merge it with another:
    ``true``, ``1.0`` and ``1`` are three keys, ``[1]`` and ``[true]`` two elements (Python has
    ``True == 1 == 1.0``, and lists are not hashable). The reader wraps bools, floats, lists and
    objects in it; strings and integers (of any size) stay as they are, the fast common case.
    ``value`` is the value as read: ``to_json`` writes it back unchanged."""

    __slots__ = ("_hash", "_id", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._id = _identity(value)
        # equal to the plain value's hash where that exists, so a plain ``true`` finds it too
        self._hash = hash(value) if type(value) in (bool, float) else hash(self._id)

    def __eq__(self, other: object) -> bool:
        if type(other) is Exact:
            return self._id == other._id
        if type(other) in (bool, float, list, dict):  # the plain value it stands for
            return self._id == _identity(other)
        return False

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:  # the JSON text, as reports show a key
        return json.dumps(self.value, separators=(", ", ": "), ensure_ascii=False)

    def __repr__(self) -> str:
        return f"Exact({self})"


def _identity(v: Any) -> Any:
    """A hashable form of a JSON value that two values share only when they are the same JSON
    value: strings and integers as they are, the rest tagged with their kind."""
    t = type(v)
    if t is str or t is int or v is None:
        return v
    if t is bool:
        return ("bool", v)
    if t is float:
        return ("float", repr(v))  # -0.0 and 0.0 differ in JSON text; nan equals itself
    if t is list or t is tuple:
        return ("list", tuple(map(_identity, v)))
    if t is dict:
        return ("object", frozenset((str(k), _identity(x)) for k, x in v.items()))
    if t is Exact:
        return v._id
    return (t.__name__, repr(v))  # not JSON: still never equal to a JSON value


def exact(v: Any) -> Any:
    """``v`` ready to be compared by JSON identity: strings, integers and None as they are (the
    common case, kept fast), anything else an ``Exact``."""
    t = type(v)
    if t is str or t is int or v is None or t is Exact:
        return v
    return Exact(v)


def plain(v: Any) -> Any:
    """The value as read, for output: ``Exact`` unwrapped."""
    return v.value if type(v) is Exact else v


def to_json(o: Any) -> Any:
    """``default=`` for ``json.dumps`` of anything that may hold ops' keys or values (results,
    reports): an ``Exact`` is written as the value it was read as, anything else as text."""
    return o.value if type(o) is Exact else str(o)


class HistoryError(LockHarnessError, ValueError):
    """A line of a history file that cannot be read as an op."""


@dataclass(slots=True)
class Op:
    index: int
    time: int
    process: int | str
    type: str
    f: str
    key: Any = None
    value: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "time": self.time,
            "process": self.process,
            "type": self.type,
            "f": self.f,
        }
        if self.key is not None:
            d["key"] = self.key.value if type(self.key) is Exact else self.key
        if self.value is not None:
            d["value"] = self.value
        if self.error is not None:
            d["error"] = self.error
        return d


def op_from_dict(d: Any, where: str = "") -> Op:
    """Validate one decoded JSON object; raise HistoryError naming what is wrong.

    A line whose only fault is its ``time`` raises ``BadTime``, which carries the op: the reader
    can still place it by its process's neighbours (``place_untimed``).
    """
    if not isinstance(d, dict):
        hint = " (a history is JSON Lines: one object per line)" if isinstance(d, list) else ""
        raise HistoryError(f"{where}expected a JSON object, got {type(d).__name__}{hint}")
    missing = [k for k in ("process", "type", "f") if k not in d]
    if missing:
        raise HistoryError(f"{where}missing field(s) {', '.join(missing)}")
    null = [k for k in ("process", "type", "f") if d[k] is None]
    if null:
        raise HistoryError(f"{where}null field(s) {', '.join(null)}")
    t = d["type"]
    if type(t) is not str or t not in TYPES:
        raise HistoryError(f"{where}type {_shown(t)} is not one of {', '.join(TYPES)}")
    p = d["process"]
    if not _is_int(p) and p != NEMESIS:
        raise HistoryError(f"{where}process {_shown(p)} is neither an integer nor 'nemesis'")
    f = d["f"]
    if type(f) is not str:
        raise HistoryError(f"{where}f {_shown(f)} is not a string (the op's kind)")
    index = d.get("index", -1)
    if not _is_int(index):
        raise HistoryError(f"{where}index {index!r} is not an integer")
    time = d.get("time", -1)  # absent: the reader fills it in
    good_time = _is_int(time) and (time >= 0 or "time" not in d)
    err = d.get("error")
    op = Op(
        index=index,
        time=time if good_time else -1,
        process=p,
        type=t,
        f=f,
        key=exact(d.get("key")),
        value=d.get("value"),
        error=None if err is None else str(err),
    )
    if not good_time:
        raise BadTime(f"{where}time {time!r} is not an integer >= 0 (ns)", op)
    return op


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _shown(v: Any) -> str:
    """A field's value as JSON text, in a problem."""
    try:
        return json.dumps(v)[:60]
    except ValueError:
        return repr(v)[:60]


class BadTime(HistoryError):
    """An op that is well formed but for its ``time``."""

    def __init__(self, msg: str, op: Op) -> None:
        super().__init__(msg)
        self.op = op


@dataclass
class ReadResult:
    """Ops read from a file, and the problems met on the way.

    ``problems`` are unreadable lines (a partial read), ``bad_lines`` their line numbers;
    ``duplicates`` describe ``index`` values used by more than one op (a history problem: the
    ops are kept, but their order is in doubt).
    """

    ops: list[Op] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    duplicate_count: int = 0
    lines: int = 0

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    def _bad(self, n: int, why: str) -> None:
        self.bad_lines.append(n)
        self.problems.append(why[:300])

    def sort_problems(self) -> None:
        pairs = sorted(zip(self.bad_lines, self.problems, strict=True), key=lambda x: x[0])
        self.bad_lines = [n for n, _ in pairs]
        self.problems = [p for _, p in pairs]


def read(path: str | os.PathLike[str]) -> ReadResult:
    """Read a history file, keeping every good line; bad lines become ``problems``.

    Missing ``index``/``time`` fields are filled with the line order, so a bare history from
    another tool (no times at all) still checks, ordered as written. A line that is good but
    for its ``time`` (unreadable, or missing where other lines have one) is kept when its
    process's other ops can place it (see ``place_untimed``).
    """
    with open(path, "rb") as fh:
        return parse_lines(fh, lambda: _file_lines(path))


def _file_lines(path: str | os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from fh


def parse_lines(
    lines: Iterable[bytes], reread: Callable[[], Iterable[bytes]] | None = None
) -> ReadResult:
    """The ops of history lines (each ending in a newline, as read from a file), as ``read``;
    the run hands the lines it wrote to the checkers this way, without reading the file back.
    ``reread`` gives the lines again (only when duplicate indexes must be located); by default
    ``lines`` itself, which must then be a list."""
    # A million ops and their dicts would wake the cyclic GC hundreds of times for nothing (they
    # hold no cycles): pausing it cuts about a third of the read (as in checkers.holds).
    paused = gc.isenabled()
    gc.disable()
    try:
        return _parse_lines(lines, reread)
    finally:
        if paused:
            gc.enable()


def _parse_lines(
    lines: Iterable[bytes], reread: Callable[[], Iterable[bytes]] | None
) -> ReadResult:
    res = ReadResult()
    ops = res.ops
    untimed: list[tuple[int, int]] = []  # (position in ops, position in problems)
    timeless: list[tuple[int, int]] = []  # (position in ops, line) of ops without a time
    inflight: dict[Any, Op] = {}  # process -> its invocation awaiting a completion
    n = 0
    for n, raw in enumerate(lines, start=1):
        try:
            d = _loads(raw)
        except ValueError as e:  # JSONDecodeError, orjson's, UnicodeDecodeError
            if not raw.strip():
                continue
            try:  # orjson refuses integers it cannot hold (10^400): the stdlib keeps them
                d = _exact_loads(raw)
            except ValueError:
                last = not raw.endswith(b"\n") and raw.lstrip().startswith(b"{") and n > 1
                why = "truncated (no newline at end of file)" if last else f"not JSON ({e})"
                res._bad(n, f"line {n}: {why}")
                continue
        op = _fast_op(d, inflight)
        if op is None:  # the slow path says precisely what is wrong
            if _loads is not _exact_loads and _big_float(d):
                d = _exact_loads(raw)  # an integer past 64 bits that orjson made a float
            try:
                op = op_from_dict(d, f"line {n}: ")
            except BadTime as e:
                res._bad(n, str(e))
                untimed.append((len(ops), len(res.problems) - 1))
                op = e.op
                op.time = 0  # placed below
            except HistoryError as e:
                res._bad(n, str(e))
                continue
            if not _same_key(op, inflight, res, n):
                continue
        if op.index < 0:
            op.index = len(ops)
        if op.time < 0:
            op.time = op.index
            timeless.append((len(ops), n))
        ops.append(op)
    res.lines = n
    if timeless and len(timeless) < len(ops):  # the line order is no time next to real ones
        for pos, line in timeless:
            res._bad(line, f"line {line}: no time, while other lines have one")
            untimed.append((pos, len(res.problems) - 1))
    if untimed:
        place_untimed(res, untimed)
    if timeless and untimed:
        res.sort_problems()
    _find_duplicates(res, reread or (lambda: lines))
    return res


def place_untimed(res: ReadResult, untimed: list[tuple[int, int]]) -> None:
    """Give ops with an unreadable ``time`` the least committal time their process allows.

    A process is sequential and its ops are written in its order, so an invocation happened
    after its process's previous op and a completion before its process's next one. Placing
    invocations as early and completions as late as that allows only shrinks holds and drops
    real-time precedence: it can hide a violation, never invent one. An op with no timed op of
    its process on the side it needs cannot be placed and is left out.
    """
    ops = res.ops
    bad = {pos for pos, _ in untimed}
    by_proc: dict[Any, list[int]] = {}
    for pos, op in enumerate(ops):
        by_proc.setdefault(op.process, []).append(pos)
    drop: set[int] = set()
    for positions in by_proc.values():
        if not bad.intersection(positions):
            continue
        prev = None  # time of the latest op of this process, as placed
        for i, pos in enumerate(positions):
            op = ops[pos]
            if pos not in bad:
                prev = op.time
            elif op.type == "invoke":
                if prev is None:
                    drop.add(pos)
                else:
                    op.time = prev
            else:
                nxt = next((ops[q].time for q in positions[i + 1 :] if q not in bad), None)
                if nxt is None:
                    drop.add(pos)
                else:
                    op.time = prev = nxt
    for pos, prob in untimed:
        res.problems[prob] += (
            "; left out (no timed op of its process to place it by)"
            if pos in drop
            else "; kept, placed by its process's neighbours"
        )[: max(0, 300 - len(res.problems[prob]))]
    if drop:
        res.ops[:] = [op for pos, op in enumerate(ops) if pos not in drop]


def _find_duplicates(res: ReadResult, reread: Callable[[], Iterable[bytes]]) -> None:
    """Record ``index`` values used by more than one op, naming the lines of the first ones."""
    ops = res.ops
    distinct = len(set(map(_index, ops)))  # about 3% of the read of a large history
    if distinct == len(ops):
        return
    seen: dict[int, int] = {}
    dups: dict[int, list[int]] = {}
    for n, raw in enumerate(reread(), start=1):
        try:
            d = _loads(raw)
        except ValueError:
            continue
        i = d.get("index") if type(d) is dict else None
        if type(i) is not int:
            continue
        if i in seen:
            dups.setdefault(i, [seen[i]]).append(n)
        else:
            seen[i] = n
    res.duplicate_count = len(dups) or len(ops) - distinct
    res.duplicates = [
        f"index {i} is used on lines {', '.join(map(str, lines))}"
        for i, lines in list(dups.items())[:5]
    ]
    if not res.duplicates:  # indexes filled in from the line order collided with given ones
        res.duplicates = ["indexes given on some lines collide with the line order of others"]


_TYPES = frozenset(TYPES)
_index = attrgetter("index")


def _same_key(op: Op, inflight: dict[Any, Op], res: ReadResult, n: int) -> bool:
    """A completion's key names the lock of its invocation too (a key given only on
    completions), and must agree with it, or which lock it completes is unknown: False, the line
    is unreadable. ``inflight`` is each process's invocation awaiting its completion (processes
    are sequential, and write their ops in order). ``_fast_op`` does the same inline."""
    if op.type == "invoke":
        inflight[op.process] = op
        return True
    inv = inflight.pop(op.process, None)
    if inv is None or inv.f != op.f or inv.key == op.key:
        return True
    if inv.key is None:
        inv.key = op.key
    elif op.key is None:
        op.key = inv.key
    else:
        res._bad(
            n,
            f"line {n}: key {_shown(plain(op.key))} disagrees with its invocation's key"
            f" {_shown(plain(inv.key))} (index {inv.index})",
        )
        return False
    return True


def _fast_op(d: Any, inflight: dict[Any, Op]) -> Op | None:
    """The common, well-formed line, its key agreeing with its invocation's (``_same_key``);
    None sends it to the validating path."""
    if type(d) is not dict:
        return None
    t, p, f = d.get("type"), d.get("process"), d.get("f")
    if type(t) is not str or t not in _TYPES or type(f) is not str:
        return None
    if not (type(p) is int or p == NEMESIS):
        return None
    index = d.get("index", -1)
    time = d.get("time")
    if type(time) is not int or time < 0 or type(index) is not int:
        return None
    key = d.get("key")
    tk = type(key)
    if tk is not str and tk is not int and key is not None:
        if _big_float(key):
            return None
        key = Exact(key)
    value = d.get("value")
    tv = type(value)
    if tv is not int and tv is not str and value is not None and _big_float(value):
        return None
    err = d.get("error")
    op = Op(index, time, p, t, f, key, value, err if err is None or type(err) is str else str(err))
    if t == "invoke":
        inflight[p] = op
        return op
    inv = inflight.pop(p, None)
    if inv is not None and inv.key != key and inv.f == f:
        inflight[p] = inv  # keys to reconcile: the slow path does it
        return None
    return op


_BIG = 2.0**63  # orjson reads an integer beyond 64 bits as a float at least this large


def _big_float(v: Any) -> bool:
    """Whether a decoded value holds a float as large as an integer orjson could not hold: such a
    line is decoded again by the stdlib, which keeps every integer exact."""
    t = type(v)
    if t is float:
        return abs(v) >= _BIG
    if t is list:
        return any(type(x) is not int and type(x) is not str and _big_float(x) for x in v)
    if t is dict:
        return any(_big_float(x) for x in v.values())
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_loads(raw: bytes | str) -> Any:
    """The stdlib's decoder: slower, but every integer stays an int; NaN and Infinity, which
    are not JSON, are refused as orjson refuses them."""
    return json.loads(raw, parse_constant=_no_constant)


try:  # orjson parses a history several times faster; the stdlib is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = _exact_loads


def load(path: str | os.PathLike[str]):
    """The history as a pandas DataFrame, one row an op, columns as FIELDS."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        p = p / HISTORY
    rows = [op.to_dict() for op in read(p).ops]
    df = pd.DataFrame(rows, columns=list(FIELDS))
    return df
