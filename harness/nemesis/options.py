"""Nemesis options (``--nemesis-opt NAME=VALUE``): each declared as the one ``Option`` type
(``backends.option_values``) with its type and range, so one parser accepts or refuses every
value before any server starts; a nemesis's refusal names the nemesis.

A value a nemesis would only reject when the fault is injected (a toxic with a negative latency,
a share above 1) is refused here instead: otherwise the run goes on without its fault.
"""

from __future__ import annotations

from typing import Any

from backends.errors import LockHarnessError
from backends.option_values import Option, to_bool, to_float, to_int


class OptionError(LockHarnessError, ValueError):
    """A nemesis option value that is not accepted (one line for the user)."""


def described(opt: Option) -> str:
    """ "default: meaning", as ``harness nemeses`` shows it."""
    return f"{opt.default}: {opt.help}"


class _Whole(int):
    """An integer bound printed whole under the ``:g`` format the number bounds use."""

    def __format__(self, spec: str) -> str:
        return str(int(self))


def accepted(opt: Option) -> str:
    t = opt.type
    if t is bool:
        return "true or false"  # the shared words: true/yes/on/1, false/no/off/0
    if t is str:
        return "a name"
    what = "an integer" if t is int else "a number"
    lo, hi = opt.lo, opt.hi
    if t is int:  # 2147483647, not 2.14748e+09
        lo, hi = (None if v is None else _Whole(v) for v in (lo, hi))
    if lo is not None and hi is not None:
        return f"{what} in {'(' if opt.lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{what} {'>' if opt.lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{what} <= {hi:g}"
    return what


def parse(opt: Option, nemesis: str, name: str, raw: str) -> Any:
    """The typed value, or OptionError naming the nemesis, the option, the value and what is
    accepted; words and numbers are read by the one option parser (``backends.option_values``)."""
    t = opt.type
    try:
        if t is bool:
            return to_bool(name, raw)
        if t is str:
            text = str(raw).strip()
            if not text:
                raise ValueError
            return text
        value: Any = to_int(name, raw) if t is int else to_float(name, raw)
    except ValueError:
        raise refuse(opt, nemesis, name, raw) from None
    low_ok = opt.lo is None or (value > opt.lo if opt.lo_open else value >= opt.lo)
    if not low_ok or (opt.hi is not None and value > opt.hi):
        raise refuse(opt, nemesis, name, raw)
    return value


def refuse(opt: Option, nemesis: str, name: str, raw: str, what: str | None = None) -> OptionError:
    return OptionError(
        f"nemesis {nemesis} option {name}={raw!r} is not accepted: give {what or accepted(opt)}"
    )


def _declared(help: str, kind: type, **bounds: Any) -> Option:
    """An option from "default: meaning" (a nemesis's default is often said in words: it
    depends on the run, e.g. "2 x ttl")."""
    default, _, meaning = help.partition(": ")
    return Option(default, meaning, kind=kind, **bounds)


def integer(help: str, lo: float | None = 0, hi: float | None = None) -> Option:
    return _declared(help, int, lo=lo, hi=hi)


def number(
    help: str, lo: float | None = 0, hi: float | None = None, lo_open: bool = False
) -> Option:
    return _declared(help, float, lo=lo, hi=hi, lo_open=lo_open)


def flag(help: str) -> Option:
    return _declared(help, bool)


def name(help: str) -> Option:
    return _declared(help, str)
