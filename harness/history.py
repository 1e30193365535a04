"""The history: one op per line of ``history.jsonl``, Jepsen's model.

Fields: ``index``, ``time`` (ns since run start, ``time.monotonic_ns()``), ``process`` (int, or
``"nemesis"``), ``type`` (invoke | ok | fail | info), ``f``, ``key``, ``value``, ``error``.
``ok`` took effect, ``fail`` certainly did not, ``info`` is unknown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

TYPES = ("invoke", "ok", "fail", "info")
FIELDS = ("index", "time", "process", "type", "f", "key", "value", "error")
NEMESIS = "nemesis"


class HistoryError(ValueError):
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
            d["key"] = self.key
        if self.value is not None:
            d["value"] = self.value
        if self.error is not None:
            d["error"] = self.error
        return d


def op_from_dict(d: Any, where: str = "") -> Op:
    """Validate one decoded JSON object; raise HistoryError naming what is wrong."""
    if not isinstance(d, dict):
        raise HistoryError(f"{where}expected a JSON object, got {type(d).__name__}")
    missing = [k for k in ("process", "type", "f") if k not in d]
    if missing:
        raise HistoryError(f"{where}missing field(s) {', '.join(missing)}")
    t = d["type"]
    if t not in TYPES:
        raise HistoryError(f"{where}type {t!r} is not one of {', '.join(TYPES)}")
    p = d["process"]
    if not (isinstance(p, int) and not isinstance(p, bool)) and p != NEMESIS:
        raise HistoryError(f"{where}process {p!r} is neither an integer nor 'nemesis'")
    time = d.get("time", d.get("index"))
    if time is not None and not isinstance(time, int):
        raise HistoryError(f"{where}time {time!r} is not an integer (ns)")
    err = d.get("error")
    return Op(
        index=d.get("index", -1),
        time=time if time is not None else -1,
        process=p,
        type=t,
        f=str(d["f"]),
        key=d.get("key"),
        value=d.get("value"),
        error=None if err is None else str(err),
    )


@dataclass
class ReadResult:
    """Ops read from a file, and the problems met on the way (a partial read)."""

    ops: list[Op] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.problems)


def read(path: str | os.PathLike[str]) -> ReadResult:
    """Read a history file, keeping every good line; bad lines become ``problems``.

    Missing ``index``/``time`` fields are filled with the line order, so a bare history from
    another tool (no times) still checks, ordered as written.
    """
    res = ReadResult()
    ops = res.ops
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                d = _loads(raw)
            except ValueError as e:  # JSONDecodeError, orjson's, UnicodeDecodeError
                if not raw.strip():
                    continue
                last = not raw.endswith(b"\n")
                why = "truncated (no newline at end of file)" if last else f"not JSON ({e})"
                res.problems.append(f"line {n}: {why}"[:300])
                continue
            op = _fast_op(d)
            if op is None:  # the slow path says precisely what is wrong
                try:
                    op = op_from_dict(d, f"line {n}: ")
                except HistoryError as e:
                    res.problems.append(str(e))
                    continue
            if op.index < 0:
                op.index = len(ops)
            if op.time < 0:
                op.time = op.index
            ops.append(op)
    return res


_TYPES = frozenset(TYPES)


def _fast_op(d: Any) -> Op | None:
    """The common, well-formed line; None sends it to the validating path."""
    if type(d) is not dict:
        return None
    t, p, f = d.get("type"), d.get("process"), d.get("f")
    if t not in _TYPES or f is None or not (type(p) is int or p == NEMESIS):
        return None
    time = d.get("time", d.get("index", -1))
    if type(time) is not int:
        return None
    err = d.get("error")
    return Op(
        d.get("index", -1),
        time,
        p,
        t,
        f if type(f) is str else str(f),
        d.get("key"),
        d.get("value"),
        err if err is None or type(err) is str else str(err),
    )


try:  # orjson parses a history several times faster; the stdlib is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


def iter_ops(path: str | os.PathLike[str]) -> Iterator[Op]:
    yield from read(path).ops


def load(path: str | os.PathLike[str]):
    """The history as a pandas DataFrame, one row an op, columns as FIELDS."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        p = p / "history.jsonl"
    rows = [op.to_dict() for op in read(p).ops]
    df = pd.DataFrame(rows, columns=list(FIELDS))
    return df


class HistoryWriter:
    """Appends ops to ``history.jsonl``, assigning ``index`` in arrival order, flushed per
    batch as they arrive."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")
        self.count = 0

    def append_lines(self, lines: list[bytes]) -> None:
        """Append ops already encoded as JSON objects without an ``index``: each gets the
        next index, in order, and the batch is flushed once."""
        write = self._fh.write
        for raw in lines:
            write(f'{{"index":{self.count},{raw.decode()[1:]}\n')
            self.count += 1
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
