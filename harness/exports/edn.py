"""Export a history as Jepsen EDN: one op map per line, readable by Knossos and Elle.

``type`` and ``f`` become keywords, the nemesis process ``:nemesis``; ``key``/``value`` are
always written (``nil`` when absent), ``error`` only when present. Dict and list values become
EDN maps and vectors; string dict keys that are valid keyword names become keywords.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from checkers.history import NEMESIS, Exact, Op

_KEYWORD = re.compile(r"[A-Za-z*+!_?<>=-][\w*+!?<>=.-]*(/[\w*+!?<>=.-]+)?\Z")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def keyword(name: str) -> str:
    """``:name`` when ``name`` is a valid EDN keyword name, else the EDN string."""
    return ":" + name if _KEYWORD.match(name) else _string(name)


def value(v: Any) -> str:
    """One Python value (JSON-like) as EDN."""
    if v is None:
        return "nil"
    if isinstance(v, Exact):  # a key as read: true, 1.0, [1]
        return value(v.value)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "##NaN"
        if math.isinf(v):
            return "##Inf" if v > 0 else "##-Inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dict):
        items = (
            f"{keyword(k) if isinstance(k, str) else value(k)} {value(x)}" for k, x in v.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(v, list | tuple):
        return "[" + " ".join(value(x) for x in v) + "]"
    if isinstance(v, set | frozenset):
        return "#{" + " ".join(value(x) for x in v) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as EDN; accepted: JSON-like values")


def op_edn(op: Op) -> str:
    """One op as an EDN map on one line."""
    process = ":nemesis" if op.process == NEMESIS else value(op.process)
    parts = [
        f":index {op.index}",
        f":time {op.time}",
        f":type {keyword(op.type)}",
        f":process {process}",
        f":f {keyword(op.f)}",
        f":key {value(op.key)}",
        f":value {value(op.value)}",
    ]
    if op.error is not None:
        parts.append(f":error {value(op.error)}")
    return "{" + ", ".join(parts) + "}"


def to_edn(ops: Iterable[Op]) -> str:
    """The history as Jepsen EDN text, one op map per line (newline-terminated)."""
    return "".join(op_edn(op) + "\n" for op in ops)
