"""Nemesis options (``--nemesis-opt NAME=VALUE``): each declared with its type and range, so one
parser accepts or refuses every value before any server starts.

A value a nemesis would only reject when the fault is injected (a toxic with a negative latency,
a share above 1) is refused here instead: otherwise the run goes on without its fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.errors import LockHarnessError
from backends.option_values import to_bool, to_float, to_int


class OptionError(LockHarnessError, ValueError):
    """A nemesis option value that is not accepted (one line for the user)."""


@dataclass(frozen=True)
class Opt:
    """One option: ``help`` is "default: meaning" (shown by ``harness nemeses``); ``kind`` is
    int, float, bool or str; ``lo``/``hi`` bound a number (``lo_open``: strictly above lo)."""

    help: str
    kind: type = str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def __str__(self) -> str:
        return self.help

    def accepted(self) -> str:
        if self.kind is bool:
            return "true or false"  # the shared words: true/yes/on/1, false/no/off/0
        if self.kind is str:
            return "a name"
        what = "an integer" if self.kind is int else "a number"
        if self.lo is not None and self.hi is not None:
            return f"{what} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{what} {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{what} <= {self.hi:g}"
        return what

    def parse(self, nemesis: str, name: str, raw: str) -> Any:
        """The typed value, or OptionError naming the option, the value and what is accepted;
        words and numbers are read by the one option parser (``backends.option_values``)."""
        try:
            if self.kind is bool:
                return to_bool(name, raw)
            if self.kind is str:
                text = str(raw).strip()
                if not text:
                    raise ValueError
                return text
            if self.kind is int:
                value: Any = to_int(name, raw)
            else:
                value = to_float(name, raw)
        except ValueError:
            raise self.refuse(nemesis, name, raw) from None
        low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        if not low_ok or (self.hi is not None and value > self.hi):
            raise self.refuse(nemesis, name, raw)
        return value

    def refuse(self, nemesis: str, name: str, raw: str, accepted: str | None = None) -> OptionError:
        return OptionError(
            f"nemesis {nemesis} option {name}={raw!r} is not accepted: give "
            f"{accepted or self.accepted()}"
        )


def integer(help: str, lo: float | None = 0, hi: float | None = None) -> Opt:
    return Opt(help, int, lo, hi)


def number(help: str, lo: float | None = 0, hi: float | None = None, lo_open: bool = False) -> Opt:
    return Opt(help, float, lo, hi, lo_open)


def flag(help: str) -> Opt:
    return Opt(help, bool)


def name(help: str) -> Opt:
    return Opt(help, str)
