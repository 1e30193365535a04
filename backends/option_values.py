"""Reading backend options (strings from ``--opt NAME=VALUE``) into typed values.

Errors are ValueError with one line naming the option, the bad value and what is accepted.
"""

from __future__ import annotations

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def integer(opts: dict[str, str], name: str, lo: int = 1, hi: int = 2**31 - 1) -> int:
    raw = opts[name]
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = lo - 1
    if not lo <= value <= hi:
        raise ValueError(
            f"option {name}={raw!r} is not accepted: give an integer from {lo} to {hi}"
        )
    return value


def positive_int(opts: dict[str, str], name: str) -> int:
    return integer(opts, name, 1)


def boolean(opts: dict[str, str], name: str) -> bool:
    """A yes/no option; rewritten in ``opts`` as "true"/"false" for readers of the text (the
    kill nemesis reads ``delayed_restart``)."""
    raw = str(opts[name]).strip().lower()
    if raw not in _TRUE + _FALSE:
        raise ValueError(f"option {name}={opts[name]!r} is not accepted: give true or false")
    opts[name] = "true" if raw in _TRUE else "false"
    return raw in _TRUE


def choice(opts: dict[str, str], name: str, accepted: tuple[str, ...]) -> str:
    raw = str(opts[name]).strip().lower()
    if raw not in accepted:
        raise ValueError(
            f"option {name}={opts[name]!r} is not accepted: give one of {', '.join(accepted)}"
        )
    return raw
