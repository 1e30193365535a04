"""Reading backend options (strings from ``--opt NAME=VALUE``) into typed values.

Errors are ValueError with one line naming the option, the bad value and what is accepted.
"""

from __future__ import annotations

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def positive_int(opts: dict[str, str], name: str) -> int:
    raw = opts[name]
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"option {name}={raw!r} is not accepted: give a positive integer")
    return value


def boolean(opts: dict[str, str], name: str) -> bool:
    raw = str(opts[name]).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"option {name}={opts[name]!r} is not accepted: give true or false")


def choice(opts: dict[str, str], name: str, accepted: tuple[str, ...]) -> str:
    raw = str(opts[name]).strip()
    if raw not in accepted:
        raise ValueError(
            f"option {name}={raw!r} is not accepted: give one of {', '.join(accepted)}"
        )
    return raw
