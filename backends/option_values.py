"""The one option parser for backend, workload and nemesis options (``--opt``,
``--workload-opt``, ``--nemesis-opt NAME=VALUE``): strings from the command line, or values
already typed (from Python), into typed values.

Errors are ValueError with one line naming the option, the bad value and what is accepted. It
lives in ``backends`` because that package imports nothing else of the project: workloads and
the harness may import it without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def parse_pairs(items: tuple[str, ...] | list[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` words from the command line into a dict (the last one of a name wins)."""
    opts = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"{flag} takes NAME=VALUE (got {it!r})")
        k, v = it.split("=", 1)
        opts[k.strip()] = v.strip()
    return opts


def to_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ValueError(
            f"option {name}={raw!r} is not accepted: give true or false "
            f"({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)})"
        )
    return word in TRUE_WORDS


def to_int(name: str, raw: Any, lo: int | None = None, hi: int | None = None) -> int:
    value: int | None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    else:
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = None
    if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(
            f"option {name}={raw!r} is not accepted: give {_range('an integer', lo, hi)}"
        )
    return value


def to_float(name: str, raw: Any, lo: float | None = None, hi: float | None = None) -> float:
    value: float | None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int | float):
        value = float(raw)
    else:
        try:
            value = float(str(raw).strip())
        except ValueError:
            value = None
    if (
        value is None
        or not math.isfinite(value)  # nan, inf
        or (lo is not None and value < lo)
        or (hi is not None and value > hi)
    ):
        raise ValueError(
            f"option {name}={raw!r} is not accepted: give {_range('a number', lo, hi)}"
        )
    return value


def _range(what: str, lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{what} from {number_text(lo)} to {number_text(hi)}"
    if lo is not None:
        return f"{what} >= {number_text(lo)}"
    if hi is not None:
        return f"{what} <= {number_text(hi)}"
    return what


def number_text(x: float | None) -> str:
    """A bound as a user reads it: 2147483647, not 2.14748e+09."""
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Option:
    """One declared option: its typed default (which gives its type), what it means, bounds or
    accepted words, and the command-line flag that also sets it (if any)."""

    default: Any
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    flag: str | None = None
    unit: str = ""  # e.g. "ms": said with the accepted range
    #: The type where the default does not give it: a nemesis's default said in words ("2 x ttl").
    kind: type | None = None
    lo_open: bool = False  # ``lo`` itself refused: strictly above it

    @property
    def type(self) -> type:
        return self.kind or type(self.default)

    def parse(self, name: str, raw: Any) -> Any:
        if self.choices:
            return choice({name: raw}, name, self.choices)
        t = self.type
        try:
            if t is bool:
                return to_bool(name, raw)
            if t is int:
                value: Any = to_int(name, raw, _i(self.lo), _i(self.hi))
            elif t is float:
                value = to_float(name, raw, self.lo, self.hi)
            else:
                return str(raw)
            if self.lo_open and value == self.lo:
                what = "an integer" if t is int else "a number"
                raise ValueError(
                    f"option {name}={raw!r} is not accepted: give {what} > {number_text(self.lo)}"
                )
            return value
        except ValueError as e:
            raise ValueError(f"{e} {self.unit}".rstrip()) from None


def option_text(value: Any) -> str:
    """A parsed value as an option's text: true/false for a yes/no one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _i(x: float | None) -> int | None:
    return None if x is None else int(x)


def parse_options(
    spec: Mapping[str, Option], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Every option of ``spec``: the given value parsed, or the default. An unknown name is a
    ValueError listing the accepted ones; ``owner`` says whose options they are."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(
            f"{owner} has no option {', '.join(unknown)}; accepted: {', '.join(sorted(spec)) or 'none'}"
        )
    out = {}
    for k, o in spec.items():
        if k not in given:
            out[k] = o.default
            continue
        try:
            out[k] = o.parse(k, given[k])
        except ValueError as e:
            flag = f" ({o.flag.split('/')[0]})" if o.flag else ""
            raise ValueError(f"{owner}{flag}: {e}") from None
    return out


def choice(opts: Mapping[str, Any], name: str, accepted: tuple[str, ...]) -> str:
    raw = str(opts[name]).strip().lower()
    if raw not in accepted:
        raise ValueError(
            f"option {name}={opts[name]!r} is not accepted: give one of {', '.join(accepted)}"
        )
    return raw
